"""The db:* actions and the `envforge db` commands against the real test cluster."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.cli import main
from envforge.db.actions import CloneAction, CloneInput, DropAction, RestoreAction, SnapshotAction
from envforge.db.connection import ServerAddress
from envforge.errors import PersonalDataError, UnsafeTargetError
from tests.services_fixtures import make_services

from .conftest import HERE, TEST_KEY, database_exists
from .test_clone import rows

pytestmark = pytest.mark.postgres


@pytest.fixture
def server_env(pg_server: ServerAddress, monkeypatch: pytest.MonkeyPatch) -> ServerAddress:
    """No saved blocks: the actions fall back to PG* and ENVFORGE_ANONYMISATION_KEY."""
    monkeypatch.setenv("PGHOST", pg_server.host)
    monkeypatch.setenv("PGPORT", str(pg_server.port))
    monkeypatch.setenv("PGUSER", pg_server.user)
    monkeypatch.setenv("ENVFORGE_ANONYMISATION_KEY", TEST_KEY.decode())
    return pg_server


def context(tmp_path: Path) -> ActionContext:
    shutil.copy(HERE / "realistic_rules.yaml", tmp_path / "rules.yaml")
    return ActionContext(services=make_services(), run_id="run-1", step_id="database", template_name="t",
                         template_dir=tmp_path, workspace=tmp_path,
                         logger=logging.getLogger("test.db"))


def test_clone_action_run_and_rollback(server_env: ServerAddress, source_db: ServerAddress,
                                       tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ctx = context(tmp_path)
    params = CloneInput(environment="PR-42", sourceDatabase="prod", rules="rules.yaml", jobs=1)
    action = CloneAction()
    assert action.check(params, tmp_path) == []
    with caplog.at_level(logging.INFO):
        output = action.run(ctx, params)
    assert output.database == "envforge_pr_42" and output.rows > 20000
    assert any("copied crm.customers" in r.message and "rows/s" in r.message
               for r in caplog.records)
    assert TEST_KEY.decode() not in caplog.text
    action.rollback(ctx, params, output)
    assert not database_exists(server_env, "envforge_pr_42")


def test_clone_action_dry_run_is_strict_and_creates_nothing(
        server_env: ServerAddress, source_db: ServerAddress, tmp_path: Path) -> None:
    ctx = context(tmp_path)
    with pytest.raises(PersonalDataError, match=r"crm\.customers\.email"):
        CloneAction().dry_run(ctx, CloneInput(environment="dry", sourceDatabase="prod"))
    output = CloneAction().dry_run(ctx, CloneInput(environment="dry", sourceDatabase="prod",
                                                   rules="rules.yaml"))
    assert output.database == "envforge_dry"
    assert not database_exists(server_env, "envforge_dry")


def test_snapshot_restore_drop_actions(server_env: ServerAddress, source_db: ServerAddress,
                                       tmp_path: Path) -> None:
    ctx = context(tmp_path)
    clone_params = CloneInput(environment="nightly", sourceDatabase="prod", rules="rules.yaml",
                              jobs=1)
    CloneAction().run(ctx, clone_params)
    store = str(tmp_path / "snapshots")
    snap_params = SnapshotAction.input_model.model_validate(
        {"environment": "nightly", "name": "nightly", "store": store})
    snap = SnapshotAction().run(ctx, snap_params)  # type: ignore[arg-type]
    assert snap.sizeBytes > 0
    restore_params = RestoreAction.input_model.model_validate(
        {"environment": "review-7", "snapshot": "nightly", "store": store})
    restored = RestoreAction().run(ctx, restore_params)  # type: ignore[arg-type]
    assert rows(server_env.with_database(restored.database),
                "SELECT count(*) FROM crm.customers")[0][0] == 2000
    drop = DropAction()
    for env in ("nightly", "review-7"):
        params = DropAction.input_model.model_validate({"environment": env})
        assert drop.run(ctx, params).dropped  # type: ignore[arg-type]
    with pytest.raises(UnsafeTargetError, match="not created by envforge"):
        drop.run(ctx, DropAction.input_model.model_validate(  # type: ignore[arg-type]
            {"environment": "x", "database": "prod"}))
    assert database_exists(server_env, "prod")


def test_cli_plan_stops_without_rules_and_passes_with_them(
        server_env: ServerAddress, source_db: ServerAddress,
        capsys: pytest.CaptureFixture[str]) -> None:
    dsn = source_db.conninfo()
    assert main(["db", "plan", "--source", dsn]) == 1
    out = capsys.readouterr().out
    assert "STOP" in out and "suggested rule: email" in out and "would stop a clone" in out
    rules = str(HERE / "realistic_rules.yaml")
    assert main(["db", "plan", "--source", dsn, "--rules", rules]) == 0
    out = capsys.readouterr().out
    assert "propagated from crm.customers.email" in out
    assert "@mailbox.test' -> '" in out  # before/after sample for the person running it


def test_cli_clone_and_drop(server_env: ServerAddress, source_db: ServerAddress,
                            capsys: pytest.CaptureFixture[str]) -> None:
    rules = str(HERE / "realistic_rules.yaml")
    assert main(["db", "clone", "--source", source_db.conninfo(), "-e", "cli",
                 "--rules", rules, "--jobs", "1"]) == 0
    assert "envforge_cli" in capsys.readouterr().out
    assert main(["db", "clone", "--source", source_db.conninfo(), "-e", "cli",
                 "--rules", rules]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["db", "drop", "-e", "cli"]) == 0
    assert not database_exists(server_env, "envforge_cli")
