"""The day-two flows (flows/day_two.py) on a real temporary Prefect server and the embedded
GitOps repository: upgrade, sleep, wake, the scheduled sleep, and a new deployment waking."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from envforge.cli import main
from envforge.errors import EnvironmentNotFoundError
from tests.helpers import commit_count, git
from tests.integration.lifecycle.test_upgrade import DEPLOYMENT, SERVICE, template_yaml
from tests.lifecycle_setup import embedded_remote, show, use_templates

pytestmark = pytest.mark.prefect


@pytest.fixture
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_templates(tmp_path / "templates", monkeypatch, {"web": (template_yaml("web"), {
        "skeleton/manifests/deployment.yaml": DEPLOYMENT,
        "skeleton/manifests/service.yaml": SERVICE})})


def _deployment(name: str) -> dict[str, dict[str, object]]:
    loaded: dict[str, dict[str, object]] = yaml.safe_load(
        show(name, "manifests/deployment.yaml"))
    return loaded


@pytest.mark.slow  # 10-20 s of flow runs on a loaded machine: make test-fast skips it
def test_day_two_flows(prefect_server: None, templates: Path) -> None:
    from flows.day_two import (
        sleep_environment_flow,
        sleep_idle_environments,
        upgrade_environments,
        wake_environment_flow,
    )

    for name in ("pr-1", "pr-2"):
        assert main(["env", "create", name, "--template", "web", "--set", "replicas=2"]) == 0
    deployment = templates / "web" / "skeleton/manifests/deployment.yaml"
    deployment.write_text(deployment.read_text().replace("revisionHistoryLimit: 3",
                                                         "revisionHistoryLimit: 6"))
    before = commit_count(embedded_remote())

    dry = upgrade_environments(all_environments=True, dry_run=True)
    assert dry["would-upgrade"] == ["pr-1", "pr-2"] and commit_count(embedded_remote()) == before
    report = upgrade_environments(names=["pr-1", "pr-2", "pr-404"])
    assert report["upgraded"] == ["pr-1", "pr-2"] and report["failed"] == ["pr-404"]
    assert commit_count(embedded_remote()) == before + 2
    (upgraded,) = [e for e in report["environments"] if e["name"] == "pr-1"]
    assert "+  revisionHistoryLimit: 6" in upgraded["diff"]
    assert _deployment("pr-1")["spec"]["revisionHistoryLimit"] == 6

    slept = sleep_environment_flow("pr-1", reason="demo over")
    assert slept["asleep"] and slept["commit"] and _deployment("pr-1")["spec"]["replicas"] == 0
    again = sleep_environment_flow("pr-1")
    assert again["commit"] is None and "already asleep" in again["message"]
    woken = wake_environment_flow("pr-1")
    assert woken["commit"] and not woken["asleep"]
    assert _deployment("pr-1")["spec"]["replicas"] == 2
    assert wake_environment_flow("pr-1")["commit"] is None
    with pytest.raises(EnvironmentNotFoundError, match="pr-404"):
        sleep_environment_flow("pr-404")

    # every environment was just deployed: a 1-hour idle rule keeps them; quiet all day sleeps
    policy = {"preview": {"idleHours": 1}}
    kept = sleep_idle_environments(policy=policy)
    assert kept["slept"] == [] and {d["action"] for d in kept["decisions"]} == {"keep"}
    always_quiet = {"preview": {"quietDays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                "graceHours": 0}}
    planned = sleep_idle_environments(policy=always_quiet, dry_run=True)
    assert {d["action"] for d in planned["decisions"]} == {"sleep"} and planned["slept"] == []
    done = sleep_idle_environments(policy=always_quiet)
    assert done["slept"] == ["pr-1", "pr-2"] and done["failed"] == []
    assert _deployment("pr-2")["spec"]["replicas"] == 0
    woken_by_schedule = sleep_idle_environments(policy={"preview": {"idleHours": 100}})
    assert woken_by_schedule["woken"] == ["pr-1", "pr-2"]
    assert _deployment("pr-2")["spec"]["replicas"] == 2


@pytest.mark.slow  # 10-20 s of flow runs on a loaded machine: make test-fast skips it
def test_a_new_deployment_wakes_a_sleeping_environment(prefect_server: None,
                                                       templates: Path) -> None:
    from flows.day_two import sleep_environment_flow
    from flows.environments import create_environment

    assert main(["env", "create", "pr-5", "--template", "web", "--set", "replicas=2"]) == 0
    sleep_environment_flow("pr-5")
    updated = create_environment("pr-5", parameters={"replicas": 3})
    assert updated["mode"] == "update" and updated["commit"]
    assert _deployment("pr-5")["spec"]["replicas"] == 3
    record = yaml.safe_load(show("pr-5"))
    assert "sleeping" not in record["status"]
    subjects = git("--git-dir", str(embedded_remote()), "log", "-3", "--format=%s").splitlines()
    assert "env wake pr-5: new deployment" in subjects
