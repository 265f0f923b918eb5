"""What the environment lifecycle operations do, without Prefect.

``flows/environments.py`` runs these as Prefect flows (a task run per template step, one run
per environment name at a time); ``envforge env`` runs the same functions inline. An
environment is created or updated by running its template with publish:git replaced by
publish:gitops (see envforge.gitops.runs); destroy, extend and reap change the GitOps
repository directly.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from envforge.capabilities.budgets import check_value_depth
from envforge.core.sensitive import credential_paths
from envforge.errors import (
    ConfigurationError,
    EnvforgeError,
    EnvironmentExistsError,
    EnvironmentNotFoundError,
    TTLError,
)
from envforge.gitops.naming import check_environment_name, environment_host
from envforge.gitops.record import EnvironmentRecord, Isolation, Source, utc_now
from envforge.gitops.repository import open_store
from envforge.gitops.runs import environment_template
from envforge.gitops.settings import gitops_settings
from envforge.gitops.ttl import checked_ttl
from envforge.secrets.redaction import mask_credential_values
from envforge.services import Services
from envforge.templating.loader import TemplateCatalog
from envforge.templating.model import Template, TemplateStep
from envforge.templating.parameters import pages, validate_parameters

Mode = Literal["create", "update"]


@dataclass
class EnvironmentPlan:
    """A template run for one environment, ready for the runner."""

    mode: Mode
    name: str
    template: Template  # already rewritten for environments (publish:gitops)
    parameters: dict[str, Any]
    environment: dict[str, Any]


@dataclass
class EnvironmentRequest:
    """What a create-or-update asks for, before any check (plan_environment checks it)."""
    name: str
    template: str | None = None  # required for a new environment
    parameters: dict[str, Any] = field(default_factory=dict)
    environment_type: str = "preview"
    ttl: str | None = None
    source: Mapping[str, Any] | None = None
    owner: str | None = None
    isolation: str = "namespace"
    cluster: str | None = None


def plan_environment(request: EnvironmentRequest, catalog: TemplateCatalog, services: Services,
                     if_exists: Literal["update", "error"] = "update") -> EnvironmentPlan:
    """Create ``request.name``, or update it when it exists and ``if_exists`` allows.

    Everything that can be checked before a side effect is checked here: the name, the TTL,
    the template and its parameters. ``services`` are the composition root's (settings, the
    GitOps repository's credentials).
    """
    settings = gitops_settings(services.settings)
    name = check_environment_name(request.name)
    with open_store(services=services) as store:
        current = store.find(name)
    if current is not None:
        if if_exists == "error":
            raise EnvironmentExistsError(f"environment {name!r} already exists: pick another "
                                         "name, or update it")
        return _plan_update(current, request, catalog)
    if not request.template:
        raise EnvironmentNotFoundError(
            f"environment {name!r} does not exist yet: give a template to create it")
    if request.ttl is not None and not request.ttl.strip():
        raise TTLError(f"--ttl {request.ttl!r} is empty: give a duration such as 48h or 3d, "
                       f"or leave --ttl out for the default ({settings.default_ttl})")
    ttl = request.ttl or settings.default_ttl
    checked_ttl(ttl, settings.max_ttl_seconds)
    template = catalog.load(request.template)
    check_value_depth(f"environment {name!r} parameters", request.parameters)
    values = _with_name(template, dict(request.parameters), name)
    values = validate_parameters(template, values)
    mask_credential_values(values, credential_paths(pages(template)))  # never in logs or Git
    source = Source.model_validate(dict(request.source or {}))
    environment = {
        "name": name, "type": request.environment_type, "namespace": name, "mode": "create",
        "ttl": ttl, "host": environment_host(name, settings.wildcard_domain),
        "owner": request.owner or values.get("owner") or getpass.getuser(),
        "source": source.model_dump(exclude_none=True),
        "isolation": Isolation(mode=request.isolation,
                               cluster=request.cluster).model_dump(),
    }
    return EnvironmentPlan("create", name, environment_template(template), values, environment)


def _plan_update(record: EnvironmentRecord, request: EnvironmentRequest,
                 catalog: TemplateCatalog) -> EnvironmentPlan:
    template = catalog.load(request.template or record.spec.template)
    check_value_depth(f"environment {record.name!r} parameters", request.parameters)
    values = validate_parameters(template, {**record.spec.parameters, **request.parameters})
    mask_credential_values(values, credential_paths(pages(template)))  # never in logs or Git
    environment: dict[str, Any] = {
        "name": record.name, "type": record.spec.type, "mode": "update",
        "namespace": record.status.namespace, "host": record.status.host,
        "owner": record.spec.owner,
    }
    if request.source:
        environment["source"] = Source.model_validate(dict(request.source)).model_dump(
            exclude_none=True)
    return EnvironmentPlan("update", record.name, environment_template(template), values,
                           environment)


def with_health_wait(plan: EnvironmentPlan, timeout_seconds: float,
                     cluster_block: str | None = None) -> EnvironmentPlan:
    """The plan with an argocd:wait step after publish:gitops: the run only succeeds when
    Argo CD has synced that commit and the environment is healthy; otherwise the runner rolls
    back, taking the commit back out of the GitOps repository."""
    steps = list(plan.template.spec.steps)
    gitops = next(s for s in steps if s.action == "publish:gitops")
    wait = TemplateStep.model_validate({
        "id": "wait-healthy", "name": "Wait until Argo CD reports it synced and healthy",
        "action": "argocd:wait",
        "input": {"environment": plan.name, "namespace": plan.environment.get("namespace"),
                  "timeoutSeconds": timeout_seconds, "clusterBlock": cluster_block,
                  # no new commit (an unchanged update): any synced revision will do
                  "revision": f"${{{{ steps['{gitops.id}'].output.commitHash or '' }}}}"}})
    steps.insert(steps.index(gitops) + 1, wait)
    spec = plan.template.spec.model_copy(update={"steps": steps})
    template = plan.template.model_copy(update={"spec": spec})
    return EnvironmentPlan(plan.mode, plan.name, template, plan.parameters, plan.environment)


def _with_name(template: Template, values: dict[str, Any], name: str) -> dict[str, Any]:
    """The usual case: a service template's `name` parameter is the environment's name."""
    if "name" not in values and any("name" in (page.get("properties") or {})
                                    for page in pages(template)):
        values["name"] = name
    return values


@dataclass(frozen=True)
class ReapDecision:
    """What the reaper does with one environment, and why."""
    name: str
    action: Literal["destroy", "warn", "keep"]
    reason: str


def decide_reaping(records: list[EnvironmentRecord], now: datetime | None = None,
                   idle_days: float | None = None,
                   warn_before: timedelta = timedelta(hours=6),
                   sleep_counts: bool = True) -> list[ReapDecision]:
    """Which environments the reaper destroys (expired, or idle for ``idle_days``), which it
    warns about (expiring within ``warn_before``), and which it keeps. Unless sleep counts
    toward expiry (``sleep_counts``; the flow passes ENVFORGE_SLEEP_COUNTS_TOWARD_EXPIRY), a
    sleeping environment's current nap is added to its life (past naps were added at wake)."""
    now = now or utc_now()
    decisions = []
    for record in sorted(records, key=lambda r: r.name):
        status = record.status
        expires = status.expiresAt
        if not sleep_counts and status.sleeping is not None:
            expires += max(timedelta(0), now - status.sleeping.since)
        if expires <= now:
            decisions.append(ReapDecision(record.name, "destroy",
                                          f"expired at {expires.isoformat()}"))
        elif idle_days is not None and status.lastDeployedAt <= now - timedelta(days=idle_days):
            decisions.append(ReapDecision(
                record.name, "destroy",
                f"unused since {status.lastDeployedAt.isoformat()} (over {idle_days:g} days)"))
        elif expires <= now + warn_before:
            decisions.append(ReapDecision(
                record.name, "warn",
                f"expires at {expires.isoformat()}; "
                f"run 'envforge env extend {record.name} --ttl 24h' to keep it"))
        else:
            decisions.append(ReapDecision(record.name, "keep", "not expired"))
    return decisions


@dataclass
class Released:
    """What destroy removed outside Git, and what it could not reach (named, not hidden)."""

    databases: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def release_resources(name: str, namespace: str, services: Services,
                      database_block: str | None = None,
                      cluster_block: str | None = None) -> Released:
    """After the destroy commit: drop the environment's database (only if envforge created it)
    and delete the Secrets labelled with it. Argo CD prunes the rest from Git. A part that is
    not configured is skipped; one that fails is reported, and the others still run."""
    released = Released()
    try:
        from envforge.db.actions import load_server
        from envforge.db.safety import drop_owned_database, target_database_name

        server = load_server(database_block, services.connections)
        database = target_database_name(name)
        if drop_owned_database(server.address(), database):
            released.databases.append(database)
        from envforge.db.roles import drop_environment_role, role_name

        if drop_environment_role(server.address(), name):  # db:role's login, if it made one
            released.databases.append(f"role {role_name(name)}")
    except ConfigurationError:
        pass  # no database server configured: environments here have no database
    except EnvforgeError as e:
        released.problems.append(f"database: {e}")
    try:
        from envforge.secrets.actions import load_deliverer

        deliverer = load_deliverer(cluster_block, services.connections)
        released.secrets = deliverer.remove_environment(namespace, name)
    except ConfigurationError:
        pass
    except EnvforgeError as e:
        released.problems.append(f"secrets: {e}")
    return released


#: Actions that (re)create an environment's database; refresh runs them again, replacing.
#: db:role comes along to grant its login the rebuilt database again (its password is kept).
DATA_ACTIONS = ("db:seed", "db:restore", "db:clone", "db:role")


def refresh_plan(record: EnvironmentRecord, catalog: TemplateCatalog) -> EnvironmentPlan:
    """The data steps the environment's template ran when it was created, again, each with
    ``replace: true``: the database is rebuilt (seeded, restored or cloned anew) in place."""
    template = catalog.load(record.spec.template)
    values = validate_parameters(template, dict(record.spec.parameters))
    environment: dict[str, Any] = {
        "name": record.name, "type": record.spec.type, "mode": "create",  # as at creation
        "namespace": record.status.namespace, "host": record.status.host,
        "owner": record.spec.owner,
    }
    steps = [s.model_copy(update={"input": {**s.input, "replace": True}})
             for s in template.spec.steps if s.action in DATA_ACTIONS]
    if not steps:
        raise EnvforgeError(
            f"environment {record.name!r}: its template {record.spec.template!r} has no data "
            f"step ({', '.join(DATA_ACTIONS)}); there is nothing to refresh")
    spec = template.spec.model_copy(update={"steps": steps, "output": type(
        template.spec.output)()})
    return EnvironmentPlan("update", record.name,
                           template.model_copy(update={"spec": spec}), values, environment)
