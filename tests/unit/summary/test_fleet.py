"""The fleet table: state, time awake this week (naps from the GitOps history), pull request,
the rows Prefect's table artifact gets, and the link each summary carries."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from envforge.gitops.record import SleepState, Source
from envforge.summary.fleet import (
    FLEET_ARTIFACT_KEY,
    argocd_health,
    awake_seconds,
    describe_seconds,
    fleet_link,
    fleet_rows,
    fleet_state,
    fleet_table,
    pull_request_of,
    sleep_changes,
    week_start,
)
from tests.unit.test_sleep import record

MONDAY = datetime(2026, 11, 30, tzinfo=UTC)  # 00:00 UTC
NOW = MONDAY + timedelta(days=2, hours=12)  # Wednesday noon
HOUR = 3600.0


def asleep_since(when: datetime) -> SleepState:
    return SleepState(since=when, reason="quiet hours")


def test_week_starts_monday_midnight_utc() -> None:
    assert week_start(NOW) == MONDAY
    assert week_start(MONDAY) == MONDAY
    assert week_start(MONDAY - timedelta(seconds=1)) == MONDAY - timedelta(days=7)


def test_state_sleeping_failed_expiring_healthy_in_that_order() -> None:
    soon = NOW + timedelta(hours=2)
    assert fleet_state(record(sleeping=asleep_since(NOW), expires=soon), "Degraded",
                       NOW) == "sleeping"
    assert fleet_state(record(expires=soon), "Degraded", NOW) == "failed"
    assert fleet_state(record(expires=soon), "Missing", NOW) == "failed"
    assert fleet_state(record(expires=soon), "Healthy", NOW) == "expiring"
    assert fleet_state(record(expires=NOW + timedelta(days=1)), "Healthy", NOW) == "healthy"
    assert fleet_state(record(expires=NOW + timedelta(days=1)), "Progressing",
                       NOW) == "progressing"
    assert fleet_state(record(expires=NOW + timedelta(days=1)), None, NOW) == "unknown"


def test_awake_this_week_counts_past_naps_and_the_current_one() -> None:
    created_last_week = MONDAY - timedelta(days=3)
    always = record(deployed=created_last_week)
    assert awake_seconds(always, [], NOW) == 60 * HOUR  # Monday 00:00 to Wednesday 12:00
    # asleep Monday 18:00 -> Tuesday 08:00 (14 h), asleep again since Wednesday 02:00 (10 h)
    changes = [(MONDAY + timedelta(hours=18), "sleep"), (MONDAY + timedelta(hours=32), "wake"),
               (MONDAY + timedelta(hours=50), "sleep")]
    napping = record(deployed=created_last_week,
                     sleeping=asleep_since(MONDAY + timedelta(hours=50)))
    assert awake_seconds(napping, changes, NOW) == (60 - 14 - 10) * HOUR
    # the order the history arrives in does not matter
    assert awake_seconds(napping, list(reversed(changes)), NOW) == (60 - 14 - 10) * HOUR
    # asleep since last week, woken Tuesday 00:00: awake only since then
    woken = record(deployed=created_last_week)
    assert awake_seconds(woken, [(MONDAY + timedelta(days=1), "wake")], NOW) == 36 * HOUR
    # created this week: counted from its creation
    fresh = record(deployed=NOW - timedelta(hours=5))
    assert awake_seconds(fresh, [], NOW) == 5 * HOUR
    assert describe_seconds(36 * HOUR) == "1d 12h"
    assert describe_seconds(2 * HOUR + 300) == "2h 05m"
    assert describe_seconds(420) == "7m"


def test_pull_request_and_rows_for_the_table() -> None:
    pr = record("pr-42", expires=NOW + timedelta(days=1))
    pr = pr.model_copy(update={"spec": pr.spec.model_copy(update={
        "template": "/srv/templates/preview-app",
        "source": Source(repository="https://github.com/acme/shop.git", pullRequest=42)})})
    plain = record("dev-anna", expires=NOW + timedelta(hours=1))
    assert pull_request_of(pr) == "acme/shop#42" and pull_request_of(plain) == ""
    rows = fleet_rows([pr, plain], {"pr-42": "Healthy"}, {}, NOW)
    assert [r.name for r in rows] == ["dev-anna", "pr-42"]  # by name
    assert rows[1].template == "preview-app" and rows[1].state == "healthy"
    assert rows[0].state == "expiring" and rows[0].pull_request == ""
    assert rows[1].expires == "2026-12-03 12:00 UTC"
    table = fleet_table(rows)
    assert list(table[1]) == ["environment", "template", "owner", "pull request", "URL",
                              "state", "expires", "awake this week"]
    assert table[1]["URL"] == "https://pr-42.x.test" and table[1]["owner"] == "group:a"


def test_health_from_argocd_applications_and_the_link_to_the_fleet() -> None:
    apps = [{"metadata": {"name": "pr-1"}, "status": {"health": {"status": "Healthy"}}},
            {"metadata": {"name": "pr-2"}, "status": {}},
            {"metadata": {"name": "pr-3"}, "status": {"health": {"status": "Degraded"}}}]
    assert argocd_health(apps) == {"pr-1": "Healthy", "pr-3": "Degraded"}
    for run_page in ("http://127.0.0.1:4200/flow-runs/flow-run/0b1c",
                     "http://127.0.0.1:4200/runs/flow-run/0b1c"):
        link = fleet_link(run_page)
        assert link is not None
        assert link.url == f"http://127.0.0.1:4200/artifacts/key/{FLEET_ARTIFACT_KEY}"
    assert fleet_link(None) is None and fleet_link("http://x/flow-runs") is None


def _commit(repo: Path, when: datetime, trailers: dict[str, str]) -> None:
    message = "change\n\n" + "\n".join(f"{k}: {v}" for k, v in trailers.items())
    stamp = f"{int(when.timestamp())} +0000"
    env = {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x",
           "PATH": "/usr/bin:/bin"}
    target = repo / "environments" / trailers.get("Envforge-Environment", "other") / "f"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"{when}\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo, check=True, env=env)


def test_sleep_changes_read_from_the_commit_trailers(tmp_path: Path) -> None:
    repo = tmp_path / "gitops"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    assert sleep_changes(repo, MONDAY) == {}  # no commit yet
    _commit(repo, MONDAY - timedelta(days=1), {"Envforge-Environment": "pr-1",
                                               "Envforge-Change": "sleep"})  # last week
    _commit(repo, MONDAY + timedelta(hours=8), {"Envforge-Environment": "pr-1",
                                                "Envforge-Change": "wake"})
    _commit(repo, MONDAY + timedelta(hours=9), {"Envforge-Environment": "pr-1",
                                                "Envforge-Change": "update"})
    _commit(repo, MONDAY + timedelta(hours=20), {"Envforge-Environment": "pr-2",
                                                 "Envforge-Change": "sleep"})
    found = sleep_changes(repo, MONDAY)
    assert found == {"pr-1": [(MONDAY + timedelta(hours=8), "wake")],
                     "pr-2": [(MONDAY + timedelta(hours=20), "sleep")]}


def test_each_summary_links_to_the_fleet_once() -> None:
    from envforge.summary.fleet import with_fleet_link
    from envforge.summary.model import EnvironmentSummary, Link

    summary = EnvironmentSummary(name="pr-1", status="completed",
                                 links=(Link("Image", "reg/app@sha256:1"),),
                                 run_url="http://127.0.0.1:4200/flow-runs/flow-run/9a")
    linked = with_fleet_link(summary)
    assert [link.title for link in linked.links] == ["Image", "All environments (fleet)"]
    assert with_fleet_link(linked) == linked  # already there: not twice
    no_run = EnvironmentSummary(name="pr-1", status="completed")
    assert with_fleet_link(no_run) == no_run  # outside a flow run there is no UI to link
