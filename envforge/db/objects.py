"""Schema objects a clone handles besides rows: materialized views, owners and grants.

The schema is restored without its rows, owners and privileges: materialized views come out
empty (selecting from one is then an error) and are refreshed from the target's own,
anonymised rows; owners and grants name production's roles and are left out, and said so.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from envforge.errors import CopyFailedError


def populated_matviews(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Materialized views the source has populated, oldest first (a view built on another
    comes after it, except when redefined later: refresh_matviews retries those)."""
    rows = conn.execute(
        """SELECT n.nspname, c.relname FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind = 'm' AND c.relispopulated
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                             AND d.objid = c.oid AND d.deptype = 'e')
           ORDER BY c.oid""").fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def refresh_matviews(conn: psycopg.Connection[Any], matviews: list[tuple[str, str]],
                     logger: Any) -> None:
    """Populate the target's materialized views from its own (anonymised) rows: the schema
    dump creates them empty, and selecting from an unpopulated view is an error."""
    pending = list(matviews)
    for _ in range(len(pending) + 1):  # bounded: each round populates at least one, or stops
        failed: list[tuple[tuple[str, str], str]] = []
        for view in pending:
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(
                        sql.Identifier(*view)))
            except psycopg.Error as e:
                failed.append((view, str(e).strip().splitlines()[0]))
        if not failed:
            if matviews:
                logger.info("refreshed %d materialized view(s)", len(matviews))
            return
        if len(failed) == len(pending):
            view, reason = failed[0]
            raise CopyFailedError(f"refreshing materialized view {'.'.join(view)} failed: "
                                  f"{reason}")
        pending = [view for view, _ in failed]


def owners_and_grants(conn: psycopg.Connection[Any]) -> list[str]:
    """What the clone leaves out (the schema is restored without owners and privileges, so
    the target is owned by the clone's role and grants nothing to production's roles)."""
    row = conn.execute(
        """SELECT array(SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c
                        JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE c.relkind IN ('r','p','v','m','S','f')
                          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                          AND n.nspname NOT LIKE 'pg\\_%%'
                          AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
                        ORDER BY 1),
                  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE c.relacl IS NOT NULL AND n.nspname NOT IN ('pg_catalog',
                         'information_schema') AND n.nspname NOT LIKE 'pg\\_%%')
                  + (SELECT count(*) FROM pg_namespace n WHERE n.nspacl IS NOT NULL
                     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'public')
                     AND n.nspname NOT LIKE 'pg\\_%%'),
                  current_user""").fetchone()
    assert row is not None
    owners, grants, me = list(row[0]), int(row[1]), str(row[2])
    out = []
    if owners:
        out.append(f"owners ({', '.join(owners)} in the source): every object of the target "
                   f"is owned by {me}, the role that cloned it")
    if grants:
        out.append(f"grants ({grants} tables, views, sequences or schemas have privileges in "
                   "the source): none are copied; grant what the environment's role needs in "
                   "a seed SQL fixture or the application's migrations")
    return out
