"""Which DSNs the early schema dump takes (a password never goes to a child's command line)
and how it finds the PostgreSQL tools (no server needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envforge.db.early_dump import EarlySchemaDump, find_pg_tool, may_hold_password


@pytest.mark.parametrize("dsn", [
    "host=db user=app password=s3cret dbname=prod",
    "host=db user=app PASSWORD='x y' dbname=prod",
    "postgresql://app:s3cret@db:5432/prod",
    "postgres://app:@db/prod",
    "postgresql://db/prod?password=s3cret",
])
def test_a_dsn_that_may_hold_a_password_is_not_started_early(dsn: str) -> None:
    assert may_hold_password(dsn)
    assert EarlySchemaDump.start(dsn) is None


@pytest.mark.parametrize("dsn", [
    "host=127.0.0.1 port=5432 user=postgres dbname=prod",
    "postgresql://app@db:5432/prod",
    "postgresql://db:5432/prod?sslmode=require",
    "postgresql:///prod?host=/var/run/postgresql",
])
def test_a_dsn_without_a_password_is(dsn: str) -> None:
    assert not may_hold_password(dsn)


def test_the_configured_folder_comes_first(tmp_path: Path) -> None:
    tool = tmp_path / "pg_dump"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert find_pg_tool("pg_dump", str(tmp_path)) == str(tool)
    assert find_pg_tool("no-such-pg-tool", str(tmp_path)) is None
    (tmp_path / "psql").write_text("not executable")
    found = find_pg_tool("psql", str(tmp_path))
    assert found != str(tmp_path / "psql")


@pytest.mark.skipif(find_pg_tool("psql", None) is None, reason="no psql installed")
def test_an_unreachable_source_gives_no_snapshot_and_leaves_nothing() -> None:
    early = EarlySchemaDump.start("host=127.0.0.1 port=1 user=postgres dbname=x")
    assert early is not None
    assert early.snapshot() is None
    path, _ = early.dump_path()
    assert path is None
    folder = early._dir.name  # the temp dir must be gone after close
    early.close()
    assert not os.path.exists(folder)


@pytest.mark.skipif(find_pg_tool("psql", None) is None, reason="no psql installed")
def test_a_dsn_psql_cannot_parse_gives_no_snapshot() -> None:
    early = EarlySchemaDump.start("this is not = a dsn '")
    assert early is not None
    assert early.snapshot() is None
    early.close()
