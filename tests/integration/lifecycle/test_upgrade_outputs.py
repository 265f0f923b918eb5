"""`envforge env upgrade` of environments whose files hold outputs of steps an upgrade does not
run (as preview-app's image digest, database and ConfigMap): the recorded outputs are carried
forward from the environment's files; a step whose inputs the upgrade changes is named and
nothing is committed. A real bare Git remote and a real PostgreSQL (db:seed); vault:secrets
with plain variables only, so no Vault is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.cli import main
from envforge.db.connection import ServerAddress
from tests.helpers import commit_count
from tests.integration.db.conftest import pg_server  # noqa: F401  (the session's PostgreSQL)
from tests.lifecycle_setup import (
    bump_template,
    deployment,
    embedded_remote,
    manifest_files,
    show,
    use_postgres,
    use_templates,
)

TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: carried, version: "1.0.0"}
spec:
  owner: group:platform
  type: service
  parameters:
    properties:
      name: {type: string}
      level: {type: string, default: info}
  steps:
    - id: database
      action: db:seed
      input: {environment: "${{ parameters.name }}", schema: db/schema.sql}
    - id: secrets
      name: Variables
      action: vault:secrets
      input:
        environment: ${{ parameters.name }}
        variablesFile: ./variables.yaml
        overrides: {LOG_LEVEL: "${{ parameters.level }}"}
    - id: fetch
      action: fetch:template
      input:
        url: ./skeleton
        values:
          database: ${{ steps.database.output.database }}
          host: ${{ steps.database.output.host }}
"""
DEPLOYMENT = deployment(env={"DB_NAME": "${{ values.database }}",
                              "DB_HOST": "${{ values.host }}"})


@pytest.fixture
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              pg_server: ServerAddress) -> Path:  # noqa: F811
    use_postgres(monkeypatch, pg_server)
    return use_templates(tmp_path / "templates", monkeypatch, {"carried": (TEMPLATE, {
        "skeleton/manifests/deployment.yaml": DEPLOYMENT,
        "db/schema.sql": "CREATE TABLE public.t (id int);\n",
        "variables.yaml": "variables:\n  GREETING: hello\n"})})


def _bump(templates: Path) -> None:
    bump_template(templates / "carried", "revisionHistoryLimit: 3", "revisionHistoryLimit: 5")


def test_outputs_of_steps_an_upgrade_does_not_run_are_carried_forward(
        templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "create", "pr-7", "--template", "carried"]) == 0
    files = manifest_files("pr-7")
    config_maps = [f for f in files if f != "environments/pr-7/manifests/deployment.yaml"]
    assert config_maps, files  # vault:secrets wrote the ConfigMap
    config_map = config_maps[0].split("/manifests/", 1)[1]
    created = show("pr-7", "manifests/deployment.yaml")
    lines = [line.strip() for line in created.splitlines()]
    assert "value: envforge_pr_7" in lines and "value: 127.0.0.1" in lines
    _bump(templates)
    capsys.readouterr()
    before = commit_count(embedded_remote())

    assert main(["env", "upgrade", "--all", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "pr-7: would upgrade (carried 1.0.0" in out
    assert "-  revisionHistoryLimit: 3\n+  revisionHistoryLimit: 5" in out
    assert "dry-run" not in out and "DB_NAME" not in out  # the database is carried
    assert f"b/environments/pr-7/manifests/{config_map}" not in out  # the ConfigMap is kept
    assert commit_count(embedded_remote()) == before

    assert main(["env", "upgrade", "pr-7"]) == 0
    assert "1 upgraded" in capsys.readouterr().out
    assert commit_count(embedded_remote()) == before + 1
    upgraded = show("pr-7", "manifests/deployment.yaml")
    assert "revisionHistoryLimit: 5" in upgraded
    lines = [line.strip() for line in upgraded.splitlines()]
    assert "value: envforge_pr_7" in lines and "value: 127.0.0.1" in lines
    assert manifest_files("pr-7") == files
    assert show("pr-7", f"manifests/{config_map}") == show(
        "pr-7", f"manifests/{config_map}", revision="main~1")


def test_an_upgrade_that_changes_a_skipped_steps_inputs_names_it_and_commits_nothing(
        templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "create", "pr-8", "--template", "carried"]) == 0
    _bump(templates)
    capsys.readouterr()
    before = commit_count(embedded_remote())
    code = main(["env", "upgrade", "pr-8", "--set", "level=debug"])
    captured = capsys.readouterr()
    assert code != 0
    text = captured.out + captured.err
    assert "step 'secrets' (vault:secrets): overrides" in text
    assert "envforge env update pr-8" in text
    assert commit_count(embedded_remote()) == before
