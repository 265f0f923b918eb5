"""`envforge env sleep|wake` on the embedded GitOps repository (a real bare Git remote):
workloads go to zero replicas and back through Git, recorded in the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from envforge.cli import main
from tests.helpers import commit_count, git
from tests.integration.lifecycle.test_upgrade import DEPLOYMENT, SERVICE, template_yaml
from tests.lifecycle_setup import embedded_remote, show, use_templates

DATABASE = """\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  labels: {app.kubernetes.io/component: database}
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
        - name: db
          image: postgres:16
"""


@pytest.fixture
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_templates(tmp_path / "templates", monkeypatch, {"web": (template_yaml("web"), {
        "skeleton/manifests/deployment.yaml": DEPLOYMENT,
        "skeleton/manifests/service.yaml": SERVICE,
        "skeleton/manifests/db.yaml": DATABASE})})


def _show(name: str, path: str) -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load(show(name, path))
    return loaded


def _replicas(name: str, file: str) -> object:
    spec = _show(name, f"manifests/{file}")["spec"]
    assert isinstance(spec, dict)
    return spec.get("replicas")


def test_sleep_and_wake_through_git(templates: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "create", "pr-1", "--template", "web", "--set", "replicas=3"]) == 0
    service_before = _show("pr-1", "manifests/service.yaml")
    before = commit_count(embedded_remote())
    capsys.readouterr()

    assert main(["env", "sleep", "pr-1", "--reason", "night"]) == 0
    assert "environment pr-1 is asleep: 1 workload(s) scaled to 0" in capsys.readouterr().out
    assert commit_count(embedded_remote()) == before + 1
    assert _replicas("pr-1", "deployment.yaml") == 0
    assert _replicas("pr-1", "db.yaml") == 1  # the database stays up
    assert _show("pr-1", "manifests/service.yaml") == service_before
    status = _show("pr-1", "environment.yaml")["status"]
    assert isinstance(status, dict)
    assert status["sleeping"]["reason"] == "night"
    assert status["sleeping"]["replicas"] == {"deployment.yaml#Deployment/app": 3}
    message = git("--git-dir", str(embedded_remote()), "log", "-1", "--format=%B")
    assert message.startswith("env sleep pr-1: night") and "Envforge-Change: sleep" in message

    assert main(["env", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "STATE" in table[0].split() and "asleep" in table[1].split()
    assert main(["env", "list", "--output", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["state"] == "asleep" and row["sleepingSince"]
    assert main(["env", "show", "pr-1"]) == 0
    assert "sleeping:" in capsys.readouterr().out

    assert main(["env", "sleep", "pr-1"]) == 0  # already asleep: no commit, clear message
    assert "pr-1 is already asleep (since" in capsys.readouterr().out
    assert commit_count(embedded_remote()) == before + 1

    assert main(["env", "wake", "pr-1"]) == 0
    assert "environment pr-1 is awake: replicas restored" in capsys.readouterr().out
    assert _replicas("pr-1", "deployment.yaml") == 3
    status = _show("pr-1", "environment.yaml")["status"]
    assert isinstance(status, dict) and "sleeping" not in status
    assert commit_count(embedded_remote()) == before + 2

    assert main(["env", "wake", "pr-1"]) == 0  # already awake: no commit, clear message
    assert "environment pr-1 is awake; nothing committed" in capsys.readouterr().out
    assert commit_count(embedded_remote()) == before + 2
    assert main(["env", "list"]) == 0
    assert "STATE" not in capsys.readouterr().out  # the column only when one is asleep


def test_sleep_or_wake_of_a_missing_environment_is_a_clear_error(
        templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "sleep", "pr-404"]) == 1
    assert "cannot sleep environment 'pr-404': it does not exist" in capsys.readouterr().err
    assert main(["env", "wake", "pr-404"]) == 1
    assert "cannot wake environment 'pr-404': it does not exist" in capsys.readouterr().err


def test_update_of_a_sleeping_environment_wakes_it(templates: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "create", "pr-1", "--template", "web", "--set", "replicas=2"]) == 0
    assert main(["env", "sleep", "pr-1"]) == 0
    capsys.readouterr()
    assert main(["env", "update", "pr-1", "--set", "replicas=4"]) == 0
    assert "environment pr-1 is awake" in capsys.readouterr().out
    assert _replicas("pr-1", "deployment.yaml") == 4
    status = _show("pr-1", "environment.yaml")["status"]
    assert isinstance(status, dict) and "sleeping" not in status


def test_wake_pushes_expiry_out_when_sleep_does_not_count(
        templates: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from envforge.environments.sleep import sleep_environment, wake_environment
    from envforge.gitops.record import utc_now
    from envforge.gitops.repository import open_store

    monkeypatch.setenv("ENVFORGE_SLEEP_COUNTS_TOWARD_EXPIRY", "false")
    assert main(["env", "create", "pr-1", "--template", "web"]) == 0
    with open_store() as store:
        expires = store.get("pr-1").status.expiresAt
        sleep_environment(store, "pr-1", "test", now=utc_now() - timedelta(hours=5))
        woken = wake_environment(store, "pr-1").record
    pushed = woken.status.expiresAt - expires
    assert timedelta(hours=5) <= pushed <= timedelta(hours=5, minutes=1)
