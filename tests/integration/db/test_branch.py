"""Anonymise once, branch per environment: golden databases, branches, swaps, retention."""

from __future__ import annotations

import logging
import shutil
import threading
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from envforge.actions.base import ActionContext
from envforge.db.actions import CloneAction, CloneInput
from envforge.db.branch import (
    branch_database,
    build_golden,
    ensure_golden,
    golden_database_name,
    golden_info,
    previous_goldens,
    staging_database_name,
)
from envforge.db.clone import CloneRequest
from envforge.db.connection import ServerAddress
from envforge.db.safety import drop_owned_database
from envforge.db.snapshot import LocalDirectoryStore, prune_snapshots, take_snapshot
from envforge.errors import UnsafeTargetError
from tests.services_fixtures import make_services

from .conftest import HERE, TEST_KEY, create_database, database_exists
from .test_clone import RULES, rows, table_digest

pytestmark = pytest.mark.postgres


def golden_request(source: ServerAddress, name: str) -> CloneRequest:
    return CloneRequest(source, source.with_database(golden_database_name(name)), RULES,
                        TEST_KEY, jobs=1)


@pytest.fixture(scope="module")
def golden(source_db: ServerAddress) -> str:
    info, report = ensure_golden(golden_request(source_db, "shop"), timedelta(hours=1))
    assert report is not None and report.rows > 20000
    return info.database


def test_golden_is_an_anonymised_clone_that_refuses_connections(
        source_db: ServerAddress, golden: str) -> None:
    assert golden == "envforge_golden_shop"
    allowed = rows(source_db, "SELECT datallowconn FROM pg_database WHERE datname = "
                              f"'{golden}'")[0][0]
    assert allowed is False
    info = golden_info(source_db, golden)
    assert info is not None and info.marker["role"] == "golden"
    # fresh: ensure_golden does not rebuild it
    again, report = ensure_golden(golden_request(source_db, "shop"), timedelta(hours=1))
    assert report is None and again.built == info.built


def test_branches_are_independent_copies_of_the_golden(source_db: ServerAddress,
                                                       golden: str) -> None:
    a, b = source_db.with_database("envforge_br_a"), source_db.with_database("envforge_br_b")
    for target in (a, b):
        seconds = branch_database(source_db, golden, target.dbname, {"environment": "t"},
                                  replace=True)
        assert seconds < 30
    source_emails = {r[0] for r in rows(source_db, "SELECT email FROM crm.customers")}
    branch_emails = {r[0] for r in rows(a, "SELECT email FROM crm.customers")}
    assert len(branch_emails) == 2000 and not branch_emails & source_emails
    assert table_digest(a, "crm.customers") == table_digest(b, "crm.customers")
    with psycopg.connect(a.conninfo(), autocommit=True) as conn:
        conn.execute("DELETE FROM crm.tickets")
    assert rows(b, "SELECT count(*) FROM crm.tickets")[0][0] > 0
    marker = rows(source_db, "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                             "WHERE datname = 'envforge_br_a'")[0][0]
    assert '"strategy": "branch"' in marker and golden in marker
    for target in (a, b):
        assert drop_owned_database(target, target.dbname)


def test_branching_while_a_session_holds_the_template(source_db: ServerAddress) -> None:
    """PostgreSQL refuses to copy a template others are connected to: the session is ended
    and the copy retried."""
    template = create_database(source_db, "envforge_golden_busy", "CREATE TABLE t (x int); "
                               "INSERT INTO t VALUES (1), (2)")
    with psycopg.connect(source_db.conninfo(), autocommit=True) as conn:
        conn.execute("COMMENT ON DATABASE envforge_golden_busy IS "
                     "'envforge:owned {\"role\": \"golden\", \"created\": "
                     "\"2026-01-01T00:00:00+00:00\"}'")
    holder = psycopg.connect(template.conninfo(), autocommit=True)
    try:
        branch_database(source_db, "envforge_golden_busy", "envforge_br_busy", {}, replace=True)
    finally:
        holder.close()
    assert rows(source_db.with_database("envforge_br_busy"), "SELECT count(*) FROM t")[0][0] == 2
    drop_owned_database(source_db, "envforge_br_busy")
    drop_owned_database(source_db, "envforge_golden_busy")


def test_rebuild_swaps_atomically_while_environments_branch(source_db: ServerAddress,
                                                            golden: str) -> None:
    """Branches made during a rebuild all succeed (the old golden or the new one, never
    none); the previous golden is kept up to `keep`, older ones are dropped."""
    failures: list[str] = []
    made = 0
    stop = threading.Event()

    def branch_loop() -> None:
        nonlocal made
        for _ in range(200):  # bounded
            if stop.is_set():
                return
            try:
                branch_database(source_db, golden, "envforge_br_loop", {}, replace=True)
                made += 1
            except Exception as e:
                failures.append(str(e))

    worker = threading.Thread(target=branch_loop)
    worker.start()
    try:
        build_golden(golden_request(source_db, "shop"), keep=1)
        build_golden(golden_request(source_db, "shop"), keep=1)
    finally:
        stop.set()
        worker.join(timeout=120)
    assert not failures and made > 0
    previous = previous_goldens(source_db, golden)
    assert len(previous) == 1  # keep=1: the older one was dropped
    assert not database_exists(source_db, staging_database_name(golden))
    assert rows(source_db.with_database("envforge_br_loop"),
                "SELECT count(*) FROM crm.customers")[0][0] == 2000
    drop_owned_database(source_db, "envforge_br_loop")


def test_a_database_that_is_no_golden_is_refused(source_db: ServerAddress) -> None:
    with pytest.raises(UnsafeTargetError, match="not an envforge golden"):
        golden_info(source_db, "prod")


def test_clone_action_branch_strategy_and_refresh(pg_server: ServerAddress,
                                                  source_db: ServerAddress, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", pg_server.host)
    monkeypatch.setenv("PGPORT", str(pg_server.port))
    monkeypatch.setenv("PGUSER", pg_server.user)
    monkeypatch.setenv("ENVFORGE_ANONYMISATION_KEY", TEST_KEY.decode())
    shutil.copy(HERE / "realistic_rules.yaml", tmp_path / "rules.yaml")
    ctx = ActionContext(services=make_services(), run_id="run-b", step_id="database", template_name="t",
                        template_dir=tmp_path, workspace=tmp_path,
                        logger=logging.getLogger("test.db"))
    params = CloneInput(environment="pr-9", sourceDatabase="prod", rules="rules.yaml",
                        strategy="branch", golden="action-test", goldenMaxAge="1h")
    first = CloneAction().run(ctx, params)
    assert first.database == "envforge_pr_9" and first.rows > 20000  # golden built
    # a refresh (replace: true, as refresh_plan sets it) with a fresh golden: branch only
    refreshed = CloneAction().run(ctx, params.model_copy(update={"replace": True}))
    assert refreshed.rows == 0
    assert rows(pg_server.with_database("envforge_pr_9"),
                "SELECT count(*) FROM crm.customers")[0][0] == 2000
    CloneAction().rollback(ctx, params, refreshed)
    assert not database_exists(pg_server, "envforge_pr_9")
    assert database_exists(pg_server, "envforge_golden_action_test")
    drop_owned_database(pg_server, "envforge_golden_action_test")


def test_snapshot_retention_keeps_the_newest(source_db: ServerAddress, golden: str,
                                             tmp_path: Path) -> None:
    branch_database(source_db, golden, "envforge_br_snap", {}, replace=True)
    store = LocalDirectoryStore(tmp_path)
    for name in ("nightly-1", "nightly-2", "nightly-3", "other"):
        take_snapshot(source_db, "envforge_br_snap", store, name)
    dropped = prune_snapshots(store, keep=1, prefix="nightly-")
    assert len(dropped) == 2
    assert sorted(i.name for i in store.list()) == ["nightly-3", "other"]
    drop_owned_database(source_db, "envforge_br_snap")
