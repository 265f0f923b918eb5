"""A throw-away PostgreSQL 15 cluster for the db tests, started by scripts/services/postgres.sh
on a free port under a temp dir (127.0.0.1 only) and stopped by its pid at session end."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from envforge.db.connection import ServerAddress

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "services" / "postgres.sh"
HERE = Path(__file__).resolve().parent
TEST_KEY = b"integration-test-key-0123456789abcdef"
OTHER_KEY = b"another-key-entirely-fedcba9876543210"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[ServerAddress]:
    if shutil.which("runuser") is None and not Path("/usr/lib/postgresql/15/bin/initdb").exists():
        pytest.skip("PostgreSQL 15 is not installed (run scripts/bootstrap.sh)")
    workdir = tempfile.mkdtemp(prefix="envforge-pg-")
    port = _free_port()
    started = subprocess.run(["bash", str(SCRIPT), "start", workdir, str(port)],
                             capture_output=True, text=True, check=False)
    if started.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(f"could not start the test PostgreSQL: {started.stderr}")
    try:
        yield ServerAddress(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", workdir], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def create_database(server: ServerAddress, name: str, sql: str) -> ServerAddress:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    address = server.with_database(name)
    with psycopg.connect(address.conninfo(), autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]
    return address


@pytest.fixture(scope="session")
def source_db(pg_server: ServerAddress) -> ServerAddress:
    """The realistic production-like source (read-only for every test)."""
    return create_database(pg_server, "prod", (HERE / "realistic_schema.sql").read_text())


def database_exists(server: ServerAddress, name: str) -> bool:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (name,)).fetchone() is not None
