"""`envforge env upgrade` on the embedded GitOps repository (a real bare Git remote): templates
that change after their environments were made, and every bad input the issue lists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from envforge.cli import main
from tests.helpers import commit_count, git
from tests.lifecycle_setup import (
    SERVICE,
    bump_template,
    deployment,
    embedded_remote,
    show,
    use_templates,
)

DEPLOYMENT = deployment("${{ values.replicas }}", ports=True)


def template_yaml(name: str, version: str = "1.0.0", properties: str = "",
                  required: str = "") -> str:
    return f"""
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {{name: {name}, version: "{version}"}}
spec:
  owner: group:platform
  type: service
  parameters:
    {required}
    properties:
      replicas: {{type: integer, default: 1}}
      {properties}
  steps:
    - id: fetch
      action: fetch:template
      input: {{url: ./skeleton, targetPath: app,
              values: {{replicas: "${{{{ parameters.replicas }}}}"}}}}
"""


@pytest.fixture
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_templates(tmp_path / "templates", monkeypatch, {
        name: (template_yaml(name), {"skeleton/manifests/deployment.yaml": DEPLOYMENT,
                                     "skeleton/manifests/service.yaml": SERVICE})
        for name in ("web", "worker")})


def _create(*specs: tuple[str, str]) -> None:
    for name, template in specs:
        assert main(["env", "create", name, "--template", template]) == 0


def test_upgrade_all_diffs_commits_one_per_environment_and_skips_unchanged(
        templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _create(("pr-1", "web"), ("pr-2", "web"), ("pr-3", "worker"))
    created = yaml.safe_load(show("pr-1"))
    assert created["status"]["templateVersion"]["version"] == "1.0.0"
    assert created["status"]["templateVersion"]["digest"].startswith("sha256:")
    bump_template(templates / "web", "revisionHistoryLimit: 3", "revisionHistoryLimit: 5")
    capsys.readouterr()
    before = commit_count(embedded_remote())

    assert main(["env", "upgrade", "--all", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "pr-1: would upgrade (web 1.0.0" in out and "-> 1.1.0" in out
    assert "-  revisionHistoryLimit: 3\n+  revisionHistoryLimit: 5" in out
    assert "+++ b/environments/pr-2/manifests/deployment.yaml" in out
    assert "pr-3: unchanged" in out
    assert commit_count(embedded_remote()) == before  # a dry run commits nothing

    assert main(["env", "upgrade", "--all"]) == 0
    out = capsys.readouterr().out
    assert "2 upgraded, 1 unchanged, 0 failed" in out
    assert commit_count(embedded_remote()) == before + 2  # one commit per changed environment
    log = git("--git-dir", str(embedded_remote()), "log", "-2", "--format=%B")
    assert "Envforge-Change: upgrade" in log and "Envforge-Environment: pr-2" in log
    assert "revisionHistoryLimit: 5" in show("pr-1", "manifests/deployment.yaml")
    assert yaml.safe_load(show("pr-2"))["status"]["templateVersion"]["version"] == "1.1.0"
    assert yaml.safe_load(show("pr-3"))["status"]["templateVersion"]["version"] == "1.0.0"

    assert main(["env", "upgrade", "--all", "--output", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["unchanged"] == ["pr-1", "pr-2", "pr-3"] and report["upgraded"] == []
    assert commit_count(embedded_remote()) == before + 2


def test_template_option_selects_its_environments(templates: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _create(("pr-1", "web"), ("pr-3", "worker"))
    bump_template(templates / "web", "revisionHistoryLimit: 3", "revisionHistoryLimit: 4")
    bump_template(templates / "worker", "revisionHistoryLimit: 3", "revisionHistoryLimit: 4")
    capsys.readouterr()
    assert main(["env", "upgrade", "--template", "worker", "--output", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["upgraded"] == ["pr-3"] and "pr-1" not in json.dumps(report)


def test_upgrade_of_a_missing_environment_is_reported_and_the_others_go_on(
        templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _create(("pr-1", "web"))
    bump_template(templates / "web", "revisionHistoryLimit: 3", "revisionHistoryLimit: 4")
    before = commit_count(embedded_remote())
    capsys.readouterr()
    assert main(["env", "upgrade", "pr-404", "pr-1"]) == 1
    captured = capsys.readouterr()
    assert "pr-1: upgraded" in captured.out and "pr-404: failed" in captured.out
    assert "cannot upgrade environment 'pr-404': it does not exist" in captured.err
    assert commit_count(embedded_remote()) == before + 1


def test_nothing_chosen_is_a_one_line_error(templates: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "upgrade"]) == 1
    assert "name the environments to upgrade, or give --all" in capsys.readouterr().err


def test_a_template_that_no_longer_exists_is_reported_nothing_committed(
        templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _create(("pr-1", "web"), ("pr-3", "worker"))
    bump_template(templates / "web", "revisionHistoryLimit: 3", "revisionHistoryLimit: 4")
    shutil.rmtree(templates / "worker")
    before = commit_count(embedded_remote())
    capsys.readouterr()
    assert main(["env", "upgrade", "--all"]) == 1
    captured = capsys.readouterr()
    assert "pr-3: failed; nothing committed" in captured.out
    assert "worker" in captured.err and "error:" in captured.err
    assert commit_count(embedded_remote()) == before + 1  # pr-1 still upgraded


def test_a_template_that_no_longer_validates_is_reported_nothing_committed(
        templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _create(("pr-1", "web"))
    (templates / "web" / "template.yaml").write_text("apiVersion: nope\nkind: [\n")
    before = commit_count(embedded_remote())
    capsys.readouterr()
    assert main(["env", "upgrade", "pr-1"]) == 1
    assert "template.yaml" in capsys.readouterr().err
    assert commit_count(embedded_remote()) == before


def test_manifests_that_no_longer_validate_are_reported_nothing_committed(
        templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _create(("pr-1", "web"))
    bump_template(templates / "web", "revisionHistoryLimit: 3", "revisionHistoryLimit: three")
    before = commit_count(embedded_remote())
    capsys.readouterr()
    assert main(["env", "upgrade", "pr-1"]) == 1
    err = capsys.readouterr().err
    assert "environments/pr-1/manifests/deployment.yaml" in err and "revisionHistoryLimit" in err
    assert commit_count(embedded_remote()) == before


def test_a_new_required_parameter_takes_its_default_or_stops_with_the_list(
        templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _create(("pr-1", "web"), ("pr-2", "web"))
    spec = templates / "web" / "template.yaml"
    spec.write_text(template_yaml(
        "web", "2.0.0", required="required: [tier, region, zone]",
        properties="tier: {type: string, default: gold}\n      region: {type: string}\n"
                   "      zone: {type: string}"))
    before = commit_count(embedded_remote())
    capsys.readouterr()
    assert main(["env", "upgrade", "pr-1", "pr-2"]) == 1
    err = capsys.readouterr().err
    assert "$.region" in err and "$.zone" in err and "$.tier" not in err
    assert "envforge env upgrade pr-1 --set region=" in err
    assert commit_count(embedded_remote()) == before

    assert main(["env", "upgrade", "pr-1", "--set", "region=eu", "--set", "zone=a"]) == 0
    out = capsys.readouterr().out
    assert "pr-1: upgraded" in out and "took their default: tier" in out
    parameters = yaml.safe_load(show("pr-1"))["spec"]["parameters"]
    assert parameters == {"replicas": 1, "tier": "gold", "region": "eu", "zone": "a"}
    assert commit_count(embedded_remote()) == before + 1


def test_upgrade_keeps_a_sleeping_environment_asleep(
        templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _create(("pr-1", "web"))
    assert main(["env", "update", "pr-1", "--set", "replicas=2"]) == 0
    assert main(["env", "sleep", "pr-1"]) == 0
    bump_template(templates / "web", "revisionHistoryLimit: 3", "revisionHistoryLimit: 4")
    assert main(["env", "upgrade", "pr-1"]) == 0
    deployment = yaml.safe_load(show("pr-1", "manifests/deployment.yaml"))
    assert deployment["spec"]["replicas"] == 0 and deployment["spec"][
        "revisionHistoryLimit"] == 4
    assert main(["env", "wake", "pr-1"]) == 0
    deployment = yaml.safe_load(show("pr-1", "manifests/deployment.yaml"))
    assert deployment["spec"]["replicas"] == 2 and deployment["spec"][
        "revisionHistoryLimit"] == 4
