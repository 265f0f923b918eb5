"""The early schema dump (begun by `envforge db clone --source DSN` before its imports) and the
clone read one snapshot: rows and tables written to the source after the snapshot was exported
reach neither the schema nor the rows of the target."""

from __future__ import annotations

import time

import psycopg
import pytest

from envforge.db.clone import CloneRequest, clone_database
from envforge.db.clone_start import CloneStart
from envforge.db.connection import ServerAddress
from envforge.db.early_dump import EarlySchemaDump
from envforge.db.rules import Rules
from envforge.db.safety import drop_owned_database

from .conftest import TEST_KEY, create_database

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
