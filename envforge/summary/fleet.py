"""The fleet in the Prefect UI: one table artifact of every environment, kept current.

``envforge env list`` shows the environments in a terminal; a platform's admin page shows them
to everyone. This is that page in Prefect: a table artifact under the stable key
``envforge-fleet`` (name, template, owner, pull request, URL, state, expires, time awake this
week), republished by every lifecycle flow run, so its latest version is the fleet as Git
holds it after that run, and its history is how the fleet changed. Each run's summary links to
it (:func:`fleet_link`).

State, in this order: ``sleeping`` (scaled to zero through Git), ``failed`` (Argo CD reports
the Application Degraded or Missing), ``expiring`` (expires within ``EXPIRING_WITHIN``),
``healthy`` (Argo CD reports Healthy), else what Argo CD says in lower case (``progressing``)
or ``unknown`` when no health was read. Time awake this week (since Monday 00:00 UTC) comes
from the record and the sleep/wake commits of the GitOps history (their ``Envforge-Change``
trailers), so past naps count, not only the current one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from envforge.core.git_boundary import run_git
from envforge.core.kubernetes_boundary import kubernetes_errors
from envforge.errors import EnvforgeError, GitError, SummaryError
from envforge.git.publishing import Snapshot
from envforge.gitops.record import EnvironmentRecord
from envforge.gitops.repository import open_store
from envforge.gitops.store import EnvironmentStore, read_records
from envforge.services import Services
from envforge.summary.coalesce import coalesced
from envforge.summary.model import EnvironmentSummary, Link

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

FLEET_ARTIFACT_KEY = "envforge-fleet"
EXPIRING_WITHIN = timedelta(hours=6)
FAILED_HEALTH = frozenset({"Degraded", "Missing"})
Change = Literal["sleep", "wake"]


@dataclass(frozen=True)
class FleetRow:
    """One environment as the fleet table shows it (all text: a table cell each)."""

    name: str
    template: str
    owner: str
    pull_request: str
    url: str
    state: str
    expires: str
    awake_this_week: str


def week_start(now: datetime) -> datetime:
    """Monday 00:00 UTC of ``now``'s week."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def fleet_state(record: EnvironmentRecord, health: str | None, now: datetime) -> str:
    """healthy / sleeping / failed / expiring (or Argo CD's word, or unknown): see the module."""
    if record.status.sleeping is not None:
        return "sleeping"
    if health in FAILED_HEALTH:
        return "failed"
    if record.status.expiresAt - now <= EXPIRING_WITHIN:
        return "expiring"
    if health == "Healthy":
        return "healthy"
    return health.lower() if health else "unknown"


def awake_seconds(record: EnvironmentRecord, changes: Sequence[tuple[datetime, Change]],
                  now: datetime) -> float:
    """Seconds ``record`` was awake since Monday 00:00 UTC: its life this week minus its naps.

    ``changes`` are this week's sleep/wake commits of the environment (any order). Walking back
    from now, the state before each change is the opposite of the change; the state now is
    the record's (``status.sleeping``)."""
    start = max(week_start(now), record.status.createdAt)
    if start >= now:
        return 0.0
    awake = record.status.sleeping is None
    total, until = 0.0, now
    for when, change in sorted(changes, key=lambda c: c[0], reverse=True):
        if when <= start:
            break
        if awake:
            total += (until - when).total_seconds()
        awake = change == "sleep"  # before a sleep it was awake; before a wake, asleep
        until = when
    if awake:
        total += (until - start).total_seconds()
    return total


def describe_seconds(seconds: float) -> str:
    """``3d 4h``, ``2h 05m``, ``7m``: short, for a table cell."""
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"


def pull_request_of(record: EnvironmentRecord) -> str:
    """``<repository>#<number>`` for a pull-request environment, else an empty cell."""
    source = record.spec.source
    if source.pullRequest is None:
        return ""
    repository = (source.repository or "").rstrip("/").removesuffix(".git")
    short = "/".join(repository.split("/")[-2:]) if repository else ""
    return f"{short}#{source.pullRequest}"


def fleet_rows(records: Iterable[EnvironmentRecord], health: Mapping[str, str],
               changes: Mapping[str, Sequence[tuple[datetime, Change]]],
               now: datetime) -> list[FleetRow]:
    """One row per environment, by name. ``health``: Argo CD's health status per environment
    (missing: not read); ``changes``: this week's sleep/wake commits per environment."""
    return [FleetRow(
        name=r.name, template=Path(r.spec.template).name, owner=r.spec.owner,
        pull_request=pull_request_of(r), url=r.status.url,
        state=fleet_state(r, health.get(r.name), now),
        expires=r.status.expiresAt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        awake_this_week=describe_seconds(awake_seconds(r, changes.get(r.name, ()), now)))
        for r in sorted(records, key=lambda r: r.name)]


def sleep_changes(checkout: Path, since: datetime, revision: str = "HEAD"
                  ) -> dict[str, list[tuple[datetime, Change]]]:
    """Per environment, the sleep and wake commits since ``since`` up to ``revision`` in a
    clone of the GitOps repository (``git log`` of the commit trailers envforge writes, under
    the git boundary)."""
    try:
        log = run_git(["log", f"--since={since.isoformat()}",
                       "--format=%ct%x09%(trailers:key=Envforge-Environment,valueonly,"
                       "separator=%x2C)%x09%(trailers:key=Envforge-Change,valueonly,"
                       "separator=%x2C)", revision, "--", "environments/"], cwd=checkout,
                      what="read the sleep/wake history", timeout=60)
    except GitError:  # an empty repository has no HEAD: no changes
        return {}
    found: dict[str, list[tuple[datetime, Change]]] = {}
    for line in log.splitlines():
        stamp, _, rest = line.partition("\t")
        name, _, change = rest.partition("\t")
        if change.strip() in ("sleep", "wake") and name.strip() and stamp.isdigit():
            found.setdefault(name.strip(), []).append(
                (datetime.fromtimestamp(int(stamp), UTC),
                 "sleep" if change.strip() == "sleep" else "wake"))
    return found


def fleet_table(rows: Sequence[FleetRow]) -> list[dict[str, str]]:
    """The rows as Prefect's table artifact takes them (one dict per row, columns by title)."""
    titles = {"name": "environment", "template": "template", "owner": "owner",
              "pull_request": "pull request", "url": "URL", "state": "state",
              "expires": "expires", "awake_this_week": "awake this week"}
    return [{titles[k]: v for k, v in asdict(row).items()} for row in rows]


def publish_fleet_artifact(rows: Sequence[FleetRow]) -> UUID:
    """Store the fleet table under ``envforge-fleet`` (a new version of the one artifact)."""
    from prefect.artifacts import create_table_artifact

    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    description = (f"envforge fleet: {len(rows)} environment(s)" + (
        ": " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) if rows
        else ""))
    try:
        artifact_id = create_table_artifact(table=fleet_table(rows), key=FLEET_ARTIFACT_KEY,
                                            description=description)
    except Exception as e:  # Prefect client/transport errors, wrapped at this one boundary
        raise SummaryError(f"the fleet artifact could not be stored ({type(e).__name__}: {e}); "
                           "check PREFECT_API_URL") from e
    return UUID(str(artifact_id))


#: how a flow run's page address ends, after the UI's base address (prefect.runtime's
#: ``flow_run.ui_url`` and the UI's own route)
_RUN_PAGES = ("/flow-runs/flow-run/", "/runs/flow-run/")


def fleet_link(run_url: str | None) -> Link | None:
    """The fleet artifact's page in the Prefect UI, from a flow run's UI URL
    (``<ui>/flow-runs/flow-run/<id>`` -> ``<ui>/artifacts/key/envforge-fleet``)."""
    for marker in _RUN_PAGES:
        if run_url and marker in run_url:
            base = run_url.split(marker, 1)[0]
            return Link("All environments (fleet)",
                        f"{base}/artifacts/key/{FLEET_ARTIFACT_KEY}")
    return None


def argocd_health(applications: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Environment name -> ``status.health.status`` of Argo CD Application objects (as the
    Kubernetes API lists them); an Application without a health status is left out."""
    health: dict[str, str] = {}
    for app in applications:
        name = (app.get("metadata") or {}).get("name")
        status = ((app.get("status") or {}).get("health") or {}).get("status")
        if name and status:
            health[str(name)] = str(status)
    return health


def refresh_fleet_artifact(store: EnvironmentStore, health: Mapping[str, str],
                           now: datetime | None = None) -> UUID:
    """Publish the fleet as the GitOps repository holds it now: every record, this week's
    sleep/wake commits, and ``health`` (see :func:`argocd_health`; empty: not read)."""
    now = now or datetime.now(UTC)
    when = now

    def read(snapshot: Snapshot) -> tuple[list[EnvironmentRecord],
                                          dict[str, list[tuple[datetime, Change]]]]:
        # one commit for both (no writer's lock): the records and their sleep/wake history
        if snapshot.commit is None:
            return [], {}
        return (read_records(snapshot.root),
                sleep_changes(snapshot.copy.root, week_start(when), snapshot.commit))

    records, changes = store.publisher.read_newest(read)
    return publish_fleet_artifact(fleet_rows(records, health, changes, now))


def with_fleet_link(summary: EnvironmentSummary) -> EnvironmentSummary:
    """``summary`` with a link to the fleet artifact (when it has a run's UI URL)."""
    link = fleet_link(summary.run_url)
    if link is None or any(existing.url == link.url for existing in summary.links):
        return summary
    return replace(summary, links=(*summary.links, link))


def read_argocd_health(services: Services) -> dict[str, str]:
    """Argo CD's health of every Application in the configured namespace, through the
    composition root's Kubernetes connection; empty when no cluster is configured or it does
    not answer (the table then says ``unknown``, it does not fail)."""
    from kubernetes import client as k8s_client

    namespace = services.settings.gitops.argocd_namespace
    try:
        connection = services.connections.kubernetes_cluster(None)
    except EnvforgeError:
        return {}
    try:
        api = k8s_client.CustomObjectsApi(connection.api_client)
        with kubernetes_errors(f"list Argo CD Applications in {namespace}",
                               connection.description, scrub=services.scrub or str):
            found = api.list_namespaced_custom_object(
                "argoproj.io", "v1alpha1", namespace, "applications",
                _request_timeout=min(10.0, connection.request_timeout_seconds))
    except EnvforgeError:
        return {}
    finally:
        connection.api_client.close()
    items = found.get("items", []) if isinstance(found, Mapping) else []
    return argocd_health(items)


def refresh_fleet(services: Services, logger: Logger) -> None:
    """After a lifecycle run: a new version of the fleet artifact as Git and Argo CD have it
    now. A failure is logged, never raised: the environment is what the run was for.

    Coalesced on this machine (envforge/summary/coalesce.py): when runs finish together, one
    of them refreshes for all that asked before its refresh began, the others return at once
    (each refresh reads every environment: 20 pull requests at once made 20 refreshes of a few
    seconds each, queued behind each other's Git lock, for one table)."""
    def refresh_once() -> None:
        try:
            health = read_argocd_health(services)
            with open_store(services=services) as store:
                refresh_fleet_artifact(store, health)
        except EnvforgeError as e:
            logger.warning("fleet artifact %s not refreshed: %s", FLEET_ARTIFACT_KEY, e)

    if not coalesced(services.settings.cache_dir / "fleet-refresh", refresh_once):
        logger.info("fleet artifact %s: another run on this machine is refreshing it and "
                    "will include this run", FLEET_ARTIFACT_KEY)
