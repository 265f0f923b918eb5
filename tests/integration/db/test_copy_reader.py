"""The shared small-task path reads COPY through libpq directly: rows arrive whole, an error
names the task, and the snapshot connection stays usable afterwards."""

from __future__ import annotations

import psycopg
import pytest

from envforge.db.connection import ServerAddress, read_only_snapshot
from envforge.db.copy import CopyTask, run_copy_tasks_shared
from envforge.errors import CopyFailedError

from .conftest import TEST_KEY, create_database
from .test_clone import rows

pytestmark = pytest.mark.postgres


def task(table: str, where: str | None = None) -> CopyTask:
    return CopyTask(table=f"public.{table}", label=f"public.{table}",
                    physical_sql=f'"public"."{table}"', columns=("id", "note"), where=where)


def test_rows_errors_and_the_connection_after(pg_server: ServerAddress) -> None:
    source = create_database(pg_server, "reader_src", """
        CREATE TABLE t (id int PRIMARY KEY, note text);
        INSERT INTO t SELECT g, repeat('x', g % 300) || E'\\ttab\\nline' FROM
            generate_series(1, 20000) g;""")
    target = create_database(pg_server, "reader_dst",
                             "CREATE TABLE t (id int PRIMARY KEY, note text);")
    with read_only_snapshot(source) as snap:
        done = list(run_copy_tasks_shared(snap, target, TEST_KEY, [task("t")]))
        assert done[0].rows == 20000
        with pytest.raises(CopyFailedError, match=r"copying public\.missing failed: .*missing"):
            list(run_copy_tasks_shared(snap, target, TEST_KEY, [task("missing")]))
        # a failed statement aborts the transaction: the connection reports it, it is not
        # left mid-COPY (psycopg still knows its state)
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            snap.execute("SELECT 1")
    assert rows(target, "SELECT count(*), sum(length(note)) FROM t") == rows(
        source, "SELECT count(*), sum(length(note)) FROM t")
