"""An environment's own PostgreSQL login role: ``envforge_<name>``, password-checked by SCRAM.

The app of an environment connects as a role of its own instead of the server's superuser.
The role is named like the environment's database (envforge.db.safety.target_database_name),
so a pg_hba line with ``sameuser`` lets it reach that database only. Its password is hashed
here, in Python, into the SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802 / RFC 7677, the
format of PostgreSQL's ``scram_build_secret``): the statement that creates the role carries
only the verifier, so the plain password never appears in SQL text, ``log_statement`` output or
``pg_stat_activity``. The role is marked like envforge's databases (a comment ``envforge:owned
{...}`` with the environment and the run), and only a marked role is ever altered or dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

import psycopg
from psycopg import sql

from envforge.db.connection import ServerAddress, connected
from envforge.db.identifiers import identifier
from envforge.db.safety import OWNER_MARK, target_database_name
from envforge.errors import DatabaseError, UnsafeTargetError

#: PostgreSQL's default (scram_iterations, 4096 up to 15; 16 lets it be raised).
SCRAM_ITERATIONS = 4096
SCRAM_SALT_BYTES = 16
#: What the app may do in its own database: read and write rows, use sequences; no DDL.
TABLE_PRIVILEGES = sql.SQL("SELECT, INSERT, UPDATE, DELETE")
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


def role_name(environment: str) -> str:
    """The environment's role: the same name as its database (``pr-1`` -> ``envforge_pr_1``)."""
    return target_database_name(environment)


def scram_verifier(password: str, salt: bytes | None = None,
                   iterations: int = SCRAM_ITERATIONS) -> str:
    """``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` for ``password``.

    The password must be printable ASCII: SASLprep (RFC 4013), which PostgreSQL applies to a
    password before hashing, leaves such a string as it is, so this hash is the server's.
    """
    if not password or not password.isascii() or not password.isprintable():
        raise ValueError("a role password must be non-empty printable ASCII")
    if iterations < 1:
        raise ValueError("SCRAM iterations must be at least 1")
    salt = os.urandom(SCRAM_SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
            f"${b64(stored_key).decode()}:{b64(server_key).decode()}")


def role_marker(conn: psycopg.Connection[Any], role: str) -> dict[str, Any] | None:
    """The envforge marker of ``role``; None when the role is not envforge's; LookupError when
    there is no such role."""
    row = conn.execute("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles "
                       "WHERE rolname = %s", (role,)).fetchone()
    if row is None:
        raise LookupError(role)
    comment = row[0] or ""
    if not comment.startswith(OWNER_MARK + " "):
        return None
    try:
        marker = json.loads(comment[len(OWNER_MARK) + 1:])
    except ValueError:
        return None
    return marker if isinstance(marker, dict) else None


def create_environment_role(server: ServerAddress, environment: str, verifier: str,
                            run_id: str, *, read_only: bool = False) -> bool:
    """Create (or give a new password to) the environment's role and grant it its database.

    True when the role was created, False when envforge's role for this environment existed
    and got the new verifier. A role of that name that envforge did not make for this
    environment is refused. Grants: CONNECT on the environment's database, USAGE on its
    schemas, row privileges on its tables (SELECT only with ``read_only``) and its sequences.
    """
    role = role_name(environment)
    database = target_database_name(environment)
    where = f"role {role!r} on {server.label}"
    try:
        with connected(server.with_database("postgres"), autocommit=True) as conn, \
                conn.transaction():
            try:
                marker = role_marker(conn, role)
            except LookupError:
                marker = {}
                created = True
            else:
                created = False
            if marker is None or (not created
                                  and marker.get("environment") != environment):
                raise UnsafeTargetError(
                    f"{where} exists and was not made by envforge for environment "
                    f"{environment!r}; drop or rename it, or choose another environment "
                    "name")
            verb = "CREATE" if created else "ALTER"
            conn.execute(sql.SQL(
                "{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
                "NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 20 PASSWORD {}").format(
                    sql.SQL(verb), identifier(role), sql.Literal(verifier)))
            if created:
                mark = {"environment": environment, "run_id": run_id, "kind": "role"}
                conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(
                    identifier(role),
                    sql.Literal(OWNER_MARK + " " + json.dumps(mark, sort_keys=True))))
            _grant_connect(conn, database, role)
        with connected(server.with_database(database), autocommit=True) as conn, \
                conn.transaction():
            _grant_schemas(conn, role, read_only)
    except psycopg.Error as e:
        raise DatabaseError(f"cannot set up {where}: {_first_line(e)}") from e
    return created


def regrant_environment_role(server: ServerAddress, environment: str, *,
                             read_only: bool = False) -> bool:
    """Grant the existing role its (rebuilt) database again, keeping its password: a refresh
    replaces the database, and its grants went with it. False when there is no envforge role
    of this environment to grant (the caller then creates one)."""
    role = role_name(environment)
    database = target_database_name(environment)
    try:
        with connected(server.with_database("postgres"), autocommit=True) as conn:
            try:
                marker = role_marker(conn, role)
            except LookupError:
                return False
            if marker is None or marker.get("environment") != environment:
                return False
            _grant_connect(conn, database, role)
        with connected(server.with_database(database), autocommit=True) as conn, \
                conn.transaction():
            _grant_schemas(conn, role, read_only)
    except psycopg.Error as e:
        raise DatabaseError(f"cannot grant role {role!r} on {server.label}: "
                            f"{_first_line(e)}") from e
    return True


def _grant_connect(conn: psycopg.Connection[Any], database: str, role: str) -> None:
    """Only the environment's role (and superusers such as envforge's own) may connect to its
    database: PostgreSQL gives CONNECT to PUBLIC by default, so another environment's login
    could open it wherever pg_hba lets it through."""
    conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(
        identifier(database)))
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
        identifier(database), identifier(role)))


def _grant_schemas(conn: psycopg.Connection[Any], role: str, read_only: bool) -> None:
    schemas = [str(r[0]) for r in conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname <> ALL(%s) "
        "AND nspname NOT LIKE 'pg\\_temp\\_%%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%%'",
        (list(_SYSTEM_SCHEMAS),))]
    rows = sql.SQL("SELECT") if read_only else TABLE_PRIVILEGES
    for schema in schemas:
        name = identifier(schema)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(name, identifier(role)))
        conn.execute(sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA {} TO {}").format(
            rows, name, identifier(role)))
        conn.execute(sql.SQL("GRANT {} ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
            sql.SQL("SELECT") if read_only else sql.SQL("USAGE, SELECT"), name,
            identifier(role)))


def drop_environment_role(server: ServerAddress, environment: str,
                          run_id: str | None = None) -> bool:
    """Drop the environment's role if envforge made it (with ``run_id``: only if that run made
    it). Its grants go first (DROP OWNED in its database, which also revokes CONNECT), its
    sessions are ended. Returns whether it dropped; a role envforge did not make is refused."""
    role = role_name(environment)
    database = target_database_name(environment)
    where = f"role {role!r} on {server.label}"
    try:
        with connected(server.with_database("postgres"), autocommit=True) as conn:
            try:
                marker = role_marker(conn, role)
            except LookupError:
                return False
            if marker is None:
                raise UnsafeTargetError(f"{where} was not made by envforge; envforge drops "
                                        "only what it made")
            if run_id is not None and marker.get("run_id") != run_id:
                return False
            conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(identifier(role)))
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE usename = %s", (role,))
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (database,)).fetchone() is not None
        if exists:
            with connected(server.with_database(database), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(identifier(role)))
        with connected(server.with_database("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(identifier(role)))
    except psycopg.Error as e:
        raise DatabaseError(f"cannot drop {where}: {_first_line(e)}") from e
    return True


def drop_roles_of_run(server: ServerAddress, environment: str, run_id: str) -> list[str]:
    """Drop the roles a killed create of ``environment`` in run ``run_id`` made; their names."""
    try:
        with connected(server.with_database("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                  (role_name(environment),)).fetchone() is not None
    except psycopg.Error as e:
        raise DatabaseError(f"cannot list roles on {server.label}: {_first_line(e)}") from e
    if exists and drop_environment_role(server, environment, run_id=run_id):
        return [role_name(environment)]
    return []


def _first_line(error: psycopg.Error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
