"""The early schema dump (begun by `envforge db clone --source DSN` before its imports) and the
clone read one snapshot: rows and tables written to the source after the snapshot was exported
reach neither the schema nor the rows of the target."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from envforge.db.clone import CloneRequest, clone_database
from envforge.db.clone_start import CloneStart
from envforge.db.connection import ServerAddress
from envforge.db.early_dump import EarlySchemaDump
from envforge.db.rules import Rules
from envforge.db.safety import drop_owned_database

from .conftest import TEST_KEY, create_database, database_exists

pytestmark = pytest.mark.postgres


def test_writes_after_the_early_snapshot_reach_neither_schema_nor_rows(
        pg_server: ServerAddress) -> None:
    source = create_database(pg_server, "early_src", """
        CREATE TABLE item (id int PRIMARY KEY, label text NOT NULL);
        CREATE TABLE note (id int PRIMARY KEY, item_id int REFERENCES item(id));
        INSERT INTO item SELECT g, 'label ' || g FROM generate_series(1, 300) g;
        INSERT INTO note SELECT g, g FROM generate_series(1, 300) g;""")
    target = pg_server.with_database("envforge_early_target")
    drop_owned_database(target, target.dbname)
    early = EarlySchemaDump.start(source.conninfo())
    assert early is not None
    exported = early.snapshot()
    assert exported is not None and exported[1] == "UTF8"
    with psycopg.connect(source.conninfo(), autocommit=True) as conn:  # after the export
        conn.execute("INSERT INTO item SELECT g, 'late ' || g FROM generate_series(301, 400) g")
        conn.execute("CREATE TABLE late_table (id int)")
        conn.execute("UPDATE item SET label = 'changed' WHERE id <= 10")
    rules = Rules.model_validate({"strict": False})
    request = CloneRequest(source, target, rules, TEST_KEY, jobs=2,
                           marker={"environment": "early"})
    with CloneStart(source, target, request.marker, early=early) as start:
        assert start.snapshot_id == exported[0]  # the clone joined the early snapshot
        clone_database(request, start=start)
    try:
        with psycopg.connect(target.conninfo()) as conn:
            assert conn.execute("SELECT count(*), count(*) FILTER (WHERE label = 'changed') "
                                "FROM item").fetchone() == (300, 0)
            assert conn.execute("SELECT to_regclass('public.late_table')").fetchone() == (None,)
            assert conn.execute("SELECT count(*) FROM note").fetchone() == (300,)
            # the schema came through the early dump: keys and the foreign key are there
            assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conrelid IN "
                                "('item'::regclass, 'note'::regclass)").fetchone() == (3,)
    finally:
        drop_owned_database(target, target.dbname)
    # the exporting transaction ended with the clone: no session of it stays on the source
    # (a backend leaves pg_stat_activity a moment after its client hung up: wait, bounded)
    deadline = time.monotonic() + 20
    with psycopg.connect(source.conninfo(), autocommit=True) as conn:
        while True:
            left = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                "AND pid <> pg_backend_pid()", (source.dbname,)).fetchone()
            if left == (0,) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert left == (0,)


def test_a_clone_falls_back_to_its_own_snapshot_when_the_early_one_is_of_another_database(
        pg_server: ServerAddress) -> None:
    source = create_database(pg_server, "early_src2", "CREATE TABLE t (id int PRIMARY KEY);"
                             "INSERT INTO t SELECT generate_series(1, 50);")
    other = create_database(pg_server, "early_other", "CREATE TABLE other (id int);")
    target = pg_server.with_database("envforge_early_fallback")
    drop_owned_database(target, target.dbname)
    early = EarlySchemaDump.start(other.conninfo())  # not the clone's source
    assert early is not None and early.snapshot() is not None
    request = CloneRequest(source, target, Rules.model_validate({"strict": False}), TEST_KEY,
                           marker={"environment": "fallback"})
    with CloneStart(source, target, request.marker, early=early) as start:
        assert start.snapshot_id != early.snapshot()[0]  # type: ignore[index]
        clone_database(request, start=start)
    try:
        with psycopg.connect(target.conninfo()) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (50,)
            assert conn.execute("SELECT to_regclass('public.other')").fetchone() == (None,)
    finally:
        drop_owned_database(target, target.dbname)


def test_sigterm_before_the_clone_machinery_loads_leaves_nothing(
        pg_server: ServerAddress, tmp_path: Path) -> None:
    """SIGTERM while the command still imports (the early snapshot's psql child and the schema
    dump's temporary folder begun, the clone's own handler not yet set) unwinds: one line, exit
    143, no temporary folder, no target. Before, the default action ended the process there
    and left the folder (a schema-only dump) behind."""
    create_database(pg_server, "early_term_src", """
        CREATE TABLE item (id int PRIMARY KEY, label text NOT NULL);
        INSERT INTO item SELECT g, 'label ' || g FROM generate_series(1, 50000) g;""")
    rules = tmp_path / "rules.yaml"
    rules.write_text("strict: false\n", encoding="utf-8")
    temp = tmp_path / "tmp"
    temp.mkdir()
    dsn = f"host={pg_server.host} port={pg_server.port} user={pg_server.user} dbname="
    env = dict(os.environ, TMPDIR=str(temp), ENVFORGE_ANONYMISATION_KEY=TEST_KEY.decode())
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; from envforge.cli import main; sys.exit(main())",
         "db", "clone", "--source", dsn + "early_term_src", "--server", dsn + "postgres",
         "-e", "early_term", "--rules", str(rules)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 20
        while not list(temp.glob("envforge-schema-*")):
            assert child.poll() is None, "the command ended before its schema dump began"
            assert time.monotonic() < deadline, "the schema dump never began"
            time.sleep(0.002)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=60)
    assert child.returncode == 143, err
    assert err.strip().splitlines()[-1] == "error: terminated (SIGTERM) while cloning"
    assert list(temp.iterdir()) == []
    assert not database_exists(pg_server, "envforge_early_term")
