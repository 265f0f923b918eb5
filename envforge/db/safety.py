"""Where envforge may write: only databases it created itself, never the source.

A target database gets a name derived from its environment and, when created, a comment
``envforge:owned {...}`` that later runs check before writing or dropping. Whether two
addresses reach the same server is decided by what the servers say about themselves (system
identifier when readable, postmaster start time, port, data directory), not by host names, so
``localhost`` and ``127.0.0.1`` for one server are caught.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from envforge.core.processes import ProcessIdentity, current_process
from envforge.db.connection import ServerAddress, connected
from envforge.db.identifiers import identifier
from envforge.errors import CopyFailedError, UnsafeTargetError

log = logging.getLogger("envforge.db")

OWNER_MARK = "envforge:owned"
# Roles of the databases behind branches (envforge.db.branch): an environment's clone, seed,
# restore or branch never replaces one of them, whatever its name.
_GOLDEN_ROLES = ("golden", "staging", "previous")
# Names of goldens, their staging and their previous copies (envforge.db.branch): only a
# database in one of those roles is ever created under them, so an environment named
# `golden-shop` or `gnext-...` can neither squat on a golden's name nor be taken by a rebuild.
RESERVED_PREFIXES = ("envforge_golden_", "envforge_gnext_", "envforge_gprev_", "envforge_new_")
_NAME_MAX = 63  # NAMEDATALEN - 1
#: A database is created under this prefix and a name derived from its target, marked, and
#: renamed to the target in one transaction: a kill between CREATE DATABASE (which cannot run
#: in a transaction) and the marker leaves an unmarked database only under this name, which
#: the next creation of that target drops, never an unmarked database blocking the target.
CREATING_PREFIX = "envforge_new_"


def target_database_name(environment: str, prefix: str = "envforge_") -> str:
    """``Feature/Login-42`` -> ``envforge_feature_login_42`` (lower case, at most 63 bytes)."""
    slug = re.sub(r"[^a-z0-9]+", "_", environment.lower()).strip("_")
    if not slug:
        raise UnsafeTargetError(f"environment name {environment!r} has no letters or digits "
                                "to derive a database name from; use e.g. 'pr-42'")
    return (prefix + slug)[:_NAME_MAX]


def server_identity(conn: psycopg.Connection[Any]) -> tuple[str, ...]:
    """What identifies a running server whatever name it was reached by."""
    row = conn.execute(
        "SELECT pg_postmaster_start_time()::text, current_setting('port'), "
        "coalesce((SELECT setting FROM pg_settings WHERE name = 'data_directory'), '')"
    ).fetchone()
    assert row is not None
    identity = [str(v) for v in row]
    try:
        with conn.transaction():
            sysid = conn.execute("SELECT system_identifier::text FROM pg_control_system()")
            identity.append(str(sysid.fetchone()[0]))  # type: ignore[index]
    except psycopg.Error:
        pass  # not granted to this role; start time + port + data dir still tell servers apart
    return tuple(identity)


def assert_not_source(source: ServerAddress, target: ServerAddress) -> None:
    """Refuse a target that is the source database, however the hosts are spelled."""
    if source.dbname != target.dbname:
        return
    with connected(source, autocommit=True) as s, connected(target.with_database("postgres"),
                                                            autocommit=True) as t:
        if server_identity(s) == server_identity(t):
            raise UnsafeTargetError(
                f"target {target.label} is the source database {source.label} (same server "
                "and database name): envforge never writes into its source; pick another "
                "target database or server")


def ownership_marker(conn: psycopg.Connection[Any], name: str) -> dict[str, Any] | None:
    """The envforge marker of database ``name``; None if it has none, raises if absent."""
    row = conn.execute(
        "SELECT oid, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (name,),
    ).fetchone()
    if row is None:
        raise LookupError(name)
    return _parse_marker(row[0], row[1])


def _parse_marker(oid: int, comment: str | None) -> dict[str, Any] | None:
    """The marker a database's comment holds, if it is envforge's own. The marker records
    the database's oid when envforge created it (a rename keeps the oid): a comment copied
    onto another database (``pg_dump --create`` of a golden restored by hand under another
    name, a COMMENT typed by someone) names another oid, so that database is not envforge's.
    Markers written before oids were recorded have none and are taken as they are."""
    text = comment or ""
    if not text.startswith(OWNER_MARK):
        return None
    try:
        marker = json.loads(text[len(OWNER_MARK):] or "{}")
    except ValueError:
        return None
    if not isinstance(marker, dict):
        return None
    if "oid" in marker and str(marker["oid"]) != str(oid):
        return None
    return marker


def create_owned_database(
    server: ServerAddress, name: str, marker: dict[str, Any], *, replace: bool = False,
    encoding: str = "UTF8", template: str | None = None, attempts: int = 5,
) -> None:
    """Create ``name`` with envforge's marker; refuse one envforge does not own. With
    ``template`` (an envforge golden database) the new database is a file copy of it."""
    with connected(server.with_database("postgres"), autocommit=True) as conn:
        create_owned_database_on(conn, server, name, marker, replace=replace,
                                 encoding=encoding, template=template, attempts=attempts)


def create_owned_database_on(
    conn: psycopg.Connection[Any], server: ServerAddress, name: str, marker: dict[str, Any],
    *, replace: bool = False, encoding: str = "UTF8", template: str | None = None,
    attempts: int = 5,
) -> None:
    """:func:`create_owned_database` over ``conn``, an autocommit session of the caller's to
    ``server``'s maintenance database (a branch checks its golden and copies it on one)."""
    try:
        existing, exists = ownership_marker(conn, name), True
    except LookupError:
        existing, exists = None, False
    if exists and existing is not None and abandoned_build(existing):
        # a clone killed (SIGKILL, power) between CREATE DATABASE and its end: half a copy
        # that nobody will finish; it never blocks the name
        log.warning("dropping database %r on %s: an unfinished copy whose %s is gone",
                    name, server.label, describe_builder(existing))
        _drop(conn, name)
        existing, exists = None, False
    if exists:
        if existing is None:
            raise UnsafeTargetError(
                f"database {name!r} on {server.host}:{server.port} exists and was not "
                "created by envforge (it has no envforge comment): envforge will not write "
                "into it; choose another environment name or remove it yourself")
        role = existing.get("role")
        if role in _GOLDEN_ROLES and marker.get("role") != role:
            raise UnsafeTargetError(
                f"database {name!r} on {server.host}:{server.port} is an envforge {role} "
                f"copy (of {existing.get('golden', name)!r}), not an environment's "
                "database: it is never replaced by one; choose another environment name")
        if marker.get("role") in _GOLDEN_ROLES and role != marker.get("role"):
            raise UnsafeTargetError(
                f"database {name!r} on {server.host}:{server.port} is an envforge "
                f"{role or 'environment'} database (for "
                f"{existing.get('environment', existing.get('golden', '?'))!r}), not a "
                f"{marker.get('role')} copy: a golden never replaces it; drop it yourself "
                "('envforge db drop') or choose another golden name")
        if not replace:
            raise UnsafeTargetError(
                f"database {name!r} on {server.host}:{server.port} already exists (created "
                f"by envforge for {existing.get('environment', '?')!r}); drop it first "
                "('envforge db drop') or replace it (--replace, or replace: true)")
        _drop(conn, name)
    if name.startswith(RESERVED_PREFIXES) and marker.get("role") not in _GOLDEN_ROLES:
        raise UnsafeTargetError(
            f"database name {name!r} is reserved for envforge's golden copies (names starting "
            f"with {', '.join(RESERVED_PREFIXES)}); choose another environment or database name")
    stamp = dict(marker, created=datetime.now(UTC).isoformat(timespec="seconds"))
    creating = creating_name(name)

    def make() -> None:
        if template is None:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {}").format(
                identifier(creating), sql.Literal(encoding)))
        else:
            copy_template(conn, template, creating, attempts)

    try:
        try:
            make()
        except psycopg.errors.DuplicateDatabase:  # a creation killed before its marker
            _drop_unmarked_leftover(conn, creating)
            make()
        created = conn.execute("SELECT oid FROM pg_database WHERE datname = %s",
                               (creating,)).fetchone()
        _mark_and_rename(conn, creating, name,
                         dict(stamp, oid=int(created[0])) if created else stamp, attempts)
    except psycopg.Error as e:
        with contextlib.suppress(psycopg.Error):  # else the next creation drops it
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                identifier(creating)))
        raise CopyFailedError(f"cannot create database {name!r} on {server.label}: "
                              f"{str(e).strip().splitlines()[0]}") from e


def creating_name(target: str) -> str:
    """The name a database for ``target`` has until it is marked (:data:`CREATING_PREFIX`)."""
    return CREATING_PREFIX + hashlib.sha256(target.encode()).hexdigest()[:24]


def _drop_unmarked_leftover(conn: psycopg.Connection[Any], creating: str) -> None:
    """Drop what a creation of the same target killed before its marker left (unmarked, under
    the creating name, so nothing but envforge made it); a marked one is never there."""
    try:
        if ownership_marker(conn, creating) is None:
            log.warning("dropping database %r: an unfinished creation (killed before it was "
                        "marked)", creating)
            _drop(conn, creating)
    except LookupError:
        pass


def _mark_and_rename(conn: psycopg.Connection[Any], creating: str, name: str,
                     marker: dict[str, Any], attempts: int) -> None:
    """Mark the new database and give it its name in one transaction (a session autovacuum
    opened on it for a moment makes the rename wait and retry, like a template copy)."""
    for attempt in range(1, attempts + 1):
        try:
            with conn.transaction():
                write_marker(conn, creating, marker)
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    identifier(creating), identifier(name)))
            return
        except psycopg.errors.ObjectInUse:
            if attempt == attempts:
                raise
            time.sleep(0.1 * attempt)


WAL_LOG_BELOW_BYTES = 96 * 1024 * 1024


def copy_template(conn: psycopg.Connection[Any], template: str, name: str,
                  attempts: int = 5) -> None:
    """``CREATE DATABASE name TEMPLATE template STRATEGY FILE_COPY`` (a file-level copy: no WAL
    for the data, about 10x faster than dump and restore; ``WAL_LOG`` for a template under
    96 MB, where the checkpoints FILE_COPY needs cost more than logging it). PostgreSQL
    refuses while another session is connected to the template; goldens do not allow
    connections, so that only happens while a golden is being changed: those sessions are
    ended and the copy retried, at most ``attempts`` times with a growing pause."""
    version = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
    try:
        size = int(conn.execute("SELECT pg_database_size(%s)",
                                (template,)).fetchone()[0])  # type: ignore[index]
    except psycopg.Error:  # no CONNECT privilege on it: size unknown, copy the files
        size = WAL_LOG_BELOW_BYTES
    strategy = sql.SQL("")  # before 15: always a file copy
    if version >= 150000:
        # FILE_COPY costs two checkpoints (with fsync on, about 0.6-1 s whatever the size)
        # and then the copy; WAL_LOG writes every block through the WAL (about 7 ms per MB
        # here). Measured crossover about 100 MB (docs/benchmarks.md, db section).
        strategy = sql.SQL(" STRATEGY WAL_LOG" if size < WAL_LOG_BELOW_BYTES
                           else " STRATEGY FILE_COPY")
    for attempt in range(1, attempts + 1):
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                identifier(name), identifier(template), strategy))
            return
        except psycopg.errors.ObjectInUse:
            if attempt == attempts:
                raise
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (template,))
            time.sleep(0.1 * attempt)


def drop_owned_database(server: ServerAddress, name: str, *, missing_ok: bool = True,
                        run_id: str | None = None) -> bool:
    """Drop ``name`` if envforge created it; refuse otherwise. Returns whether it dropped.
    With ``run_id`` (a rollback) only a database that run recorded creating is dropped; one
    made by another run under that name is left alone (False)."""
    with connected(server.with_database("postgres"), autocommit=True) as conn:
        try:
            marker = ownership_marker(conn, name)
        except LookupError:
            if missing_ok:
                return False
            raise UnsafeTargetError(f"database {name!r} does not exist on {server.label}") \
                from None
        if marker is None:
            raise UnsafeTargetError(
                f"database {name!r} on {server.host}:{server.port} was not created by envforge; "
                "envforge drops only what it created")
        if run_id is not None and marker.get("run_id") != run_id:
            return False
        _drop(conn, name)
        return True


def assert_owned(server: ServerAddress, name: str) -> dict[str, Any]:
    """The marker of an existing envforge database, or UnsafeTargetError."""
    with connected(server.with_database("postgres"), autocommit=True) as conn:
        try:
            marker = ownership_marker(conn, name)
        except LookupError:
            raise UnsafeTargetError(f"database {name!r} does not exist on {server.label}") \
                from None
    if marker is None:
        raise UnsafeTargetError(f"database {name!r} was not created by envforge; refusing")
    return marker


#: a marker key set while a copy is being built: the building process's identity
#: (envforge.core.processes); removed by :func:`finish_building` when the copy is complete
BUILDING = "building"


def building_marker(marker: dict[str, Any]) -> dict[str, Any]:
    """``marker`` naming the calling process as the one building the database."""
    return dict(marker, **{BUILDING: current_process().model_dump(mode="json")})


def _builder(marker: dict[str, Any]) -> ProcessIdentity | None:
    """The process the marker says is building the database, if any."""
    builder = marker.get(BUILDING)
    if not isinstance(builder, dict):
        return None
    try:
        return ProcessIdentity.model_validate(builder)
    except ValueError:
        return None


def abandoned_build(marker: dict[str, Any]) -> bool:
    """The marker says a copy was being built by a process that is gone (on this machine:
    one on another host counts as alive, envforge.core.processes)."""
    builder = _builder(marker)
    return builder is not None and not builder.alive()


def describe_builder(marker: dict[str, Any]) -> str:
    builder = _builder(marker)
    return builder.describe() if builder is not None else "builder"


def finish_building(server: ServerAddress, name: str) -> None:
    """Mark database ``name`` complete: its marker without :data:`BUILDING`."""
    with connected(server.with_database("postgres"), autocommit=True) as conn:
        finish_building_on(conn, name)


def finish_building_on(conn: psycopg.Connection[Any], name: str) -> None:
    """:func:`finish_building` over ``conn``, an autocommit session of the caller's to the
    server's maintenance database (a clone's early target keeps one open)."""
    try:
        marker = ownership_marker(conn, name)
    except LookupError:
        return
    if marker is not None and BUILDING in marker:
        marker.pop(BUILDING)
        write_marker(conn, name, marker)


def write_marker(conn: psycopg.Connection[Any], name: str, marker: dict[str, Any]) -> None:
    """Record ``marker`` as database ``name``'s envforge comment (inside the caller's
    transaction when there is one: a golden's swap renames and re-marks at once)."""
    conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
        identifier(name), sql.Literal(OWNER_MARK + " " + json.dumps(marker, sort_keys=True))))


def owned_databases(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """Every database on the server that carries an envforge marker, with the marker: the
    record of what envforge created (names alone prove nothing)."""
    owned: dict[str, dict[str, Any]] = {}
    for name, oid, comment in conn.execute(
            "SELECT datname, oid, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE starts_with(shobj_description(oid, 'pg_database'), %s)", (OWNER_MARK,)):
        marker = _parse_marker(oid, comment)
        if marker is not None:
            owned[str(name)] = marker
    return owned


def _drop(conn: psycopg.Connection[Any], name: str) -> None:
    # FORCE ends leftover sessions (e.g. copy workers interrupted mid-table).
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier(name)))
