"""`envforge env …` end to end on the embedded GitOps repository (templates run through the
runner), and publish:gitops inside a template run: dry run, commit, rollback on failure."""

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from envforge.cli import main
from envforge.core.config import load_settings
from envforge.errors import StepFailedError
from envforge.run.runner import TemplateRun
from envforge.services import Services
from envforge.templating.loader import load_template
from tests.helpers import commit_count, git, remote_files, write_template
from tests.unit.gitops.helpers import DEPLOYMENT, SERVICE

#: the services_from fixture (tests/conftest.py): services from the settings a test names
ServicesFrom = Callable[[Mapping[str, str]], Services]


def _remote() -> Path:
    return load_settings().embedded_gitops_repo


def test_env_commands_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "create", "pr-42", "--template", "python-service", "--ttl", "2d",
                 "--owner", "group:team-a", "--branch", "feature/x", "--pull-request", "42",
                 "--set", "replicas=2"]) == 0
    created = capsys.readouterr().out
    assert "created environment pr-42: https://pr-42-" in created
    files = remote_files(_remote())
    assert "environments/pr-42/manifests/deployment.yaml" in files
    assert not [f for f in files if f.startswith("services/")]  # publish:git was replaced

    assert main(["env", "list", "--output", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "pr-42" and row["template"] == "python-service"
    assert row["owner"] == "group:team-a" and row["expires"] in ("in 2d", "in 1d23h")
    assert row["url"].startswith("https://pr-42-")
    assert main(["env", "list"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["NAME", "TEMPLATE", "OWNER", "AGE", "EXPIRES", "URL"]

    assert main(["env", "show", "pr-42", "--output", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["spec"]["source"] == {"branch": "feature/x", "pullRequest": 42}
    assert shown["spec"]["parameters"]["replicas"] == 2

    commits = commit_count(_remote())
    assert main(["env", "update", "pr-42"]) == 0
    assert "unchanged" in capsys.readouterr().out and commit_count(_remote()) == commits
    assert main(["env", "update", "pr-42", "--set", "replicas=3"]) == 0
    assert commit_count(_remote()) == commits + 1
    assert "updated environment pr-42" in capsys.readouterr().out
    assert main(["env", "show", "pr-42", "--output", "json"]) == 0
    updated = json.loads(capsys.readouterr().out)
    assert updated["status"]["host"] == shown["status"]["host"]
    assert updated["spec"]["parameters"]["replicas"] == 3

    assert main(["env", "extend", "pr-42", "--ttl", "5d"]) == 0
    assert "now expires at" in capsys.readouterr().out
    assert main(["env", "destroy", "pr-42"]) == 0
    assert not [f for f in remote_files(_remote()) if "pr-42" in f]
    assert main(["env", "list"]) == 0
    assert "no environments" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["env", "create", "Pr_1", "--template", "python-service"], "not a DNS-1123 label"),
    (["env", "create", "pr-1", "--template", "python-service", "--ttl", "soon"],
     "is not a duration"),
    (["env", "create", "pr-1", "--template", "python-service", "--ttl", "60d"],
     "exceeds the maximum"),
    (["env", "create", "pr-1", "--template", "python-service", "--set", "replicas=9"],
     "replicas"),
    (["env", "update", "pr-9"], "cannot update environment 'pr-9'"),
    (["env", "destroy", "pr-9"], "cannot destroy environment 'pr-9'"),
    (["env", "extend", "pr-9", "--ttl", "1d"], "cannot extend environment 'pr-9'"),
])
def test_cli_bad_input_is_one_line_and_commits_nothing(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert commit_count(_remote()) <= 1  # at most the embedded repository's first commit


def test_create_twice_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "create", "pr-1", "--template", "python-service"]) == 0
    commits = commit_count(_remote())
    assert main(["env", "create", "pr-1", "--template", "python-service"]) == 1
    assert "'pr-1' already exists" in capsys.readouterr().err
    assert commit_count(_remote()) == commits


TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: gitops-demo}
spec:
  owner: group:platform
  type: service
  parameters: {properties: {replicas: {type: integer, default: 1}}}
  steps:
    - id: fetch
      action: fetch:template
      input: {url: ./skeleton, targetPath: app, values: {replicas: "${{ parameters.replicas }}"}}
    - id: environment
      action: publish:gitops
      input: {manifestsPath: app/manifests, parameters: "${{ parameters }}", ttl: 1d}
    - id: after
      action: publish:gitops
      if: ${{ parameters.replicas > 2 }}
      input: {manifestsPath: app/manifests, mode: create}
"""


def _template(tmp_path: Path) -> Path:
    return write_template(tmp_path / "gitops-demo", TEMPLATE, {
        "skeleton/manifests/deployment.yaml": DEPLOYMENT.replace(
            "${{ parameters.replicas }}", "${{ values.replicas }}"),
        "skeleton/manifests/service.yaml": SERVICE})


def test_publish_gitops_in_a_run_commits_and_a_dry_run_does_not(
        tmp_path: Path, bare_repo: Path, services_from: ServicesFrom) -> None:
    services = services_from({"ENVFORGE_GITOPS_URL": bare_repo.as_uri()})
    template = load_template(_template(tmp_path))
    dry = TemplateRun(template, {}, dry_run=True, environment={"name": "pr-3"},
                      services=services)
    try:
        result = dry.run()
    finally:
        dry.close()
    assert [s.status for s in result.steps] == ["dry-run", "dry-run", "skipped"]
    assert dry.outputs["environment"]["commitHash"] is None and commit_count(bare_repo) == 0
    assert not (services.settings.cache_dir / "git").exists()  # a dry run reads no repository

    run = TemplateRun(template, {}, environment={"name": "pr-3", "owner": "group:x"},
                      services=services)
    try:
        run.run()
    finally:
        run.close()
    out = run.outputs["environment"]
    assert out["commitHash"] and out["change"] == "create" and out["namespace"] == "pr-3"
    assert "Envforge-Environment: pr-3" in git("--git-dir", str(bare_repo), "log", "-1",
                                               "--format=%B")


def test_a_failed_run_rolls_the_environment_commit_back(
        tmp_path: Path, bare_repo: Path, services_from: ServicesFrom) -> None:
    template = load_template(_template(tmp_path))
    run = TemplateRun(template, {"replicas": 3}, environment={"name": "pr-4"},
                      services=services_from({"ENVFORGE_GITOPS_URL": bare_repo.as_uri()}))
    try:
        with pytest.raises(StepFailedError) as info:
            run.run()
    finally:
        run.close()
    assert info.value.step_id == "after" and "environment" in info.value.rolled_back
    assert "'pr-4' already exists" in str(info.value)
    assert not [f for f in remote_files(bare_repo) if "pr-4" in f]


def test_a_secret_reference_in_its_input_is_refused_before_it_runs(
        tmp_path: Path, bare_repo: Path, services_from: ServicesFrom) -> None:
    directory = _template(tmp_path)
    text = (directory / "template.yaml").read_text()
    (directory / "template.yaml").write_text(text.replace(
        'parameters: "${{ parameters }}"', 'parameters: {db: "vault:kv/data/db#password"}'))
    run = TemplateRun(load_template(directory), {}, environment={"name": "pr-5"},
                      services=services_from({"ENVFORGE_GITOPS_URL": bare_repo.as_uri()}))
    try:
        with pytest.raises(StepFailedError, match="not allowed in fields that end up in Git"):
            run.run()
    finally:
        run.close()
    assert commit_count(bare_repo) == 0
