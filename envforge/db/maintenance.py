"""Maintenance around the bulk load of a clone's target: autovacuum paused on the tables while
they are loaded and indexed, and ANALYZE on several sessions once they are complete.

Autovacuum on a table still being loaded is wasted work (it scans pages the load then extends)
and, worse, when it is still running as the post-data section starts, the index build or
foreign key that needs the table waits ``deadlock_timeout`` (1 s) before autovacuum is cancelled
(seen in the 3 M-row benchmark: one stall per clone, often). The tables' own settings are put
back at the end, so autovacuum then sees the finished tables as it normally would.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from psycopg import sql

from envforge.db.connection import ServerAddress, connected

# Ordinary tables (leaf partitions included) outside the system schemas whose own options do
# not already say whether autovacuum runs on them.
_PAUSABLE = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(c.reloptions, '{}')) AS o
                  WHERE o LIKE 'autovacuum\\_enabled=%')
ORDER BY 1, 2
"""

TableName = tuple[str, str]  # schema, table


def pause_autovacuum(target: ServerAddress) -> list[TableName]:
    """Turn autovacuum off on the target's tables (before rows are copied); returns the tables
    to hand to :func:`resume_autovacuum`."""
    with connected(target, autocommit=True) as conn:
        names = [(str(row[0]), str(row[1])) for row in conn.execute(_PAUSABLE)]
        if names:
            with conn.transaction():
                for name in names:
                    conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = off)")
                                 .format(sql.Identifier(*name)))
    return names


def resume_autovacuum(target: ServerAddress, names: list[TableName]) -> None:
    """Give the tables back their own autovacuum setting (the server's default)."""
    if not names:
        return
    with connected(target, autocommit=True) as conn, conn.transaction():
        for name in names:
            conn.execute(sql.SQL("ALTER TABLE {} RESET (autovacuum_enabled)").format(
                sql.Identifier(*name)))


def analyze(target: ServerAddress, jobs: int) -> None:
    """What a database-wide ANALYZE does, on ``jobs`` sessions at once, largest tables first:
    ANALYZE alone works through the tables one after another on one core while the others
    idle (0.6 s of the 3 M-row benchmark)."""
    with connected(target, autocommit=True) as conn:
        names = deque((str(row[0]), str(row[1])) for row in conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm', 'p') "
            "ORDER BY pg_relation_size(c.oid) DESC"))
        if jobs <= 1:
            conn.execute("ANALYZE")
            return
    lock = threading.Lock()

    def lane() -> None:
        with connected(target, autocommit=True) as conn:
            while True:
                with lock:
                    if not names:
                        return
                    name = names.popleft()
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(*name)))

    with ThreadPoolExecutor(max_workers=jobs) as lanes:
        for future in [lanes.submit(lane) for _ in range(jobs)]:
            future.result()
