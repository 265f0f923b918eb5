"""envforge.db.roles on a real PostgreSQL 15 whose pg_hba wants SCRAM-SHA-256 from every TCP
login but the superuser's, as the demo's does: an environment's role logs in with its password
to its own database only, a wrong password and another database are refused by the server, the
plain password never reaches the server's statement log, and only envforge's own role of that
environment is ever altered or dropped."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from envforge.db.connection import ServerAddress
from envforge.db.container import generate_password
from envforge.db.roles import (
    create_environment_role,
    drop_environment_role,
    drop_roles_of_run,
    regrant_environment_role,
    role_name,
    scram_verifier,
)
from envforge.db.safety import target_database_name, write_marker
from envforge.errors import UnsafeTargetError
from tests.integration.db.conftest import SCRIPT, _free_port

HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host sameuser all 127.0.0.1/32 scram-sha-256
"""


@pytest.fixture(scope="module")
def scram_server() -> Iterator[tuple[ServerAddress, Path]]:
    """A PostgreSQL of this module's own (pg_hba above, every statement logged)."""
    if not Path("/usr/lib/postgresql/15/bin/initdb").exists():
        pytest.skip("PostgreSQL 15 is not installed (run scripts/bootstrap.sh)")
    workdir = Path(tempfile.mkdtemp(prefix="envforge-pg-scram-"))
    port = _free_port()

    def run(*args: str) -> None:
        done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            pytest.fail(f"postgres.sh {args[0]}: {done.stderr}")

    try:
        run("start", str(workdir), str(port))
        run("stop", str(workdir))
        (workdir / "data" / "pg_hba.conf").write_text(HBA)
        with (workdir / "data" / "postgresql.auto.conf").open("a") as conf:
            conf.write("log_statement = 'all'\n")
        run("start", str(workdir), str(port))
        yield (ServerAddress(host="127.0.0.1", port=port, user="postgres", dbname="postgres"),
               workdir / "server.log")
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(workdir)], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def environment_database(server: ServerAddress, environment: str, run_id: str) -> str:
    """An envforge-made database for ``environment`` with a customers table and a sequence."""
    name = target_database_name(environment)
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        write_marker(conn, name, {"environment": environment, "run_id": run_id})
    with psycopg.connect(server.with_database(name).conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id serial PRIMARY KEY, email text)")
        conn.execute("INSERT INTO customers (email) VALUES ('a@example.test')")
    return name


def login(server: ServerAddress, user: str, password: str, dbname: str) -> psycopg.Connection:
    return psycopg.connect(host=server.host, port=server.port, user=user, password=password,
                           dbname=dbname, connect_timeout=10, autocommit=True)


def unique_environment() -> str:
    return f"role-{uuid.uuid4().hex[:10]}"


def test_the_role_logs_in_to_its_database_only_with_its_password(
        scram_server: tuple[ServerAddress, Path]) -> None:
    server, log = scram_server
    env, run_id = unique_environment(), uuid.uuid4().hex
    database = environment_database(server, env, run_id)
    password = generate_password()
    assert create_environment_role(server, env, scram_verifier(password), run_id)
    role = role_name(env)
    with login(server, role, password, database) as conn:
        assert conn.execute("SELECT email FROM customers").fetchall() == [("a@example.test",)]
        conn.execute("INSERT INTO customers (email) VALUES ('b@example.test')")  # sequence too
        assert conn.execute("SELECT current_user").fetchone() == (role,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE mine (x int)")  # rows, never DDL
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        login(server, role, password + "x", database)
    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
        login(server, role, password, "postgres")  # sameuser: its own database only
    logged = log.read_text(errors="replace")
    assert f'ALTER ROLE "{role}"' in logged or f'CREATE ROLE "{role}"' in logged  # all logged
    assert "SCRAM-SHA-256$4096:" in logged and password not in logged  # the verifier, only
    assert drop_environment_role(server, env)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        login(server, role, password, database)


def test_a_rebuilt_database_is_granted_again_and_the_password_kept(
        scram_server: tuple[ServerAddress, Path]) -> None:
    server, _ = scram_server
    env, run_id = unique_environment(), uuid.uuid4().hex
    database = environment_database(server, env, run_id)
    password = generate_password()
    create_environment_role(server, env, scram_verifier(password), run_id)
    environment_database(server, env, run_id)  # a refresh: dropped, made anew, no grants
    with login(server, role_name(env), password, database) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT count(*) FROM customers")
    assert regrant_environment_role(server, env)
    with login(server, role_name(env), password, database) as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (1,)
    assert drop_environment_role(server, env)
    assert not regrant_environment_role(server, env)  # no role left to grant


def test_a_role_not_made_for_the_environment_is_never_altered_or_dropped(
        scram_server: tuple[ServerAddress, Path]) -> None:
    server, _ = scram_server
    env, run_id = unique_environment(), uuid.uuid4().hex
    environment_database(server, env, run_id)
    role = role_name(env)
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        with pytest.raises(UnsafeTargetError, match="was not made by envforge"):
            create_environment_role(server, env, scram_verifier("other-password"), run_id)
        with pytest.raises(UnsafeTargetError, match="envforge drops only what it made"):
            drop_environment_role(server, env)
    finally:
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_killed_runs_clean_up_drops_only_the_role_that_run_made(
        scram_server: tuple[ServerAddress, Path]) -> None:
    server, _ = scram_server
    env, run_id = unique_environment(), uuid.uuid4().hex
    environment_database(server, env, run_id)
    create_environment_role(server, env, scram_verifier(generate_password()), run_id)
    assert drop_roles_of_run(server, env, "another-run") == []
    assert drop_roles_of_run(server, env, run_id) == [role_name(env)]
    assert drop_roles_of_run(server, env, run_id) == []


def test_no_other_login_may_connect_to_the_environments_database(
        scram_server: tuple[ServerAddress, Path]) -> None:
    """PostgreSQL gives CONNECT to PUBLIC by default: with a login made, only that login (and
    superusers) may connect to the environment's database, so another environment's login is
    kept out by the server's privileges, not only by pg_hba (also after a rebuild)."""
    server, _ = scram_server
    mine, other, run_id = unique_environment(), unique_environment(), uuid.uuid4().hex
    database = environment_database(server, mine, run_id)
    environment_database(server, other, run_id)
    create_environment_role(server, mine, scram_verifier(generate_password()), run_id)
    create_environment_role(server, other, scram_verifier(generate_password()), run_id)

    def may_connect(role: str) -> bool:
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            row = conn.execute("SELECT has_database_privilege(%s, %s, 'CONNECT')",
                               (role, database)).fetchone()
        assert row is not None
        return bool(row[0])

    assert may_connect(role_name(mine))
    assert not may_connect(role_name(other)) and not may_connect("public")
    environment_database(server, mine, run_id)  # a refresh: made anew, PUBLIC may connect
    assert regrant_environment_role(server, mine)
    assert may_connect(role_name(mine)) and not may_connect(role_name(other))
    assert drop_environment_role(server, mine) and drop_environment_role(server, other)
