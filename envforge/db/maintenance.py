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

from envforge.db.connection import ServerAddress, connected

# Ordinary tables (leaf partitions included) outside the system schemas whose own options do
# not already say whether autovacuum runs on them.
_PAUSABLE = """
SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(c.reloptions, '{}')) AS o
                  WHERE o LIKE 'autovacuum\\_enabled=%')
ORDER BY 1
"""


def pause_autovacuum(target: ServerAddress) -> list[str]:
    """Turn autovacuum off on the target's tables (before rows are copied); returns the tables
    to hand to :func:`resume_autovacuum`."""
    with connected(target, autocommit=True) as conn:
        names = [str(row[0]) for row in conn.execute(_PAUSABLE)]
        if names:
            with conn.transaction():
                for name in names:
                    conn.execute(f"ALTER TABLE {name} SET (autovacuum_enabled = off)")
    return names


def resume_autovacuum(target: ServerAddress, names: list[str]) -> None:
    """Give the tables back their own autovacuum setting (the server's default)."""
    if not names:
        return
    with connected(target, autocommit=True) as conn, conn.transaction():
        for name in names:
            conn.execute(f"ALTER TABLE {name} RESET (autovacuum_enabled)")


def analyze(target: ServerAddress, jobs: int) -> None:
    """What a database-wide ANALYZE does, on ``jobs`` sessions at once, largest tables first:
    ANALYZE alone works through the tables one after another on one core while the others
    idle (0.6 s of the 3 M-row benchmark)."""
    with connected(target, autocommit=True) as conn:
        names = deque(str(row[0]) for row in conn.execute(
            "SELECT oid::regclass::text FROM pg_class WHERE relkind IN ('r', 'm', 'p') "
            "ORDER BY pg_relation_size(oid) DESC"))
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
                conn.execute(f"ANALYZE {name}")  # regclass text: quoted, qualified as needed

    with ThreadPoolExecutor(max_workers=jobs) as lanes:
        for future in [lanes.submit(lane) for _ in range(jobs)]:
            future.result()
