"""A database envforge creates is visible under its name only with its owner marker: CREATE
DATABASE cannot run in a transaction, so it is created under a name derived from the target
and marked and renamed in one transaction. A kill between the two (a SIGKILLed create under
load) used to leave an unmarked database blocking the environment's name for good ("exists
and was not created by envforge"). Real PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest
from psycopg import sql

from envforge.db.connection import ServerAddress
from envforge.db.safety import (
    create_owned_database,
    creating_name,
    drop_owned_database,
    ownership_marker,
)
from envforge.errors import UnsafeTargetError

from .conftest import database_exists

pytestmark = pytest.mark.postgres


def _admin(server: ServerAddress) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(server.with_database("postgres").conninfo(), autocommit=True)


def test_a_creation_killed_before_its_marker_never_blocks_the_target(
        pg_server: ServerAddress) -> None:
    target = f"envforge_mk_{uuid.uuid4().hex[:8]}"
    leftover = creating_name(target)
    with _admin(pg_server) as conn:  # what a create killed right after CREATE DATABASE left
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(leftover)))
    create_owned_database(pg_server, target, {"environment": "mk", "run_id": "r1"})
    try:
        assert not database_exists(pg_server, leftover)
        with _admin(pg_server) as conn:
            marker = ownership_marker(conn, target)
        assert marker is not None and marker["run_id"] == "r1"
    finally:
        drop_owned_database(pg_server, target)


def test_the_target_never_appears_without_its_marker(pg_server: ServerAddress) -> None:
    """A watcher reads the target's row and comment in one statement (one snapshot) as fast as
    it can while the database is created, five times: never the name without the marker."""
    for _ in range(5):
        target = f"envforge_mk_{uuid.uuid4().hex[:8]}"
        seen: list[object] = []
        ready = threading.Event()

        def watch(name: str = target, seen: list[object] = seen,
                  ready: threading.Event = ready) -> None:
            with _admin(pg_server) as conn:
                ready.set()
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:  # until the name appears (it must)
                    row = conn.execute(
                        "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                        "WHERE datname = %s", (name,)).fetchone()
                    if row is not None:
                        seen.append(row[0])
                        return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        assert ready.wait(timeout=30)
        create_owned_database(pg_server, target, {"environment": "mk", "run_id": "r2"})
        watcher.join(timeout=60)
        try:
            assert seen, "the watcher never saw the database"
            assert all(isinstance(c, str) and c.startswith("envforge:owned") for c in seen)
        finally:
            drop_owned_database(pg_server, target)


def test_the_creating_names_are_reserved(pg_server: ServerAddress) -> None:
    with pytest.raises(UnsafeTargetError, match="reserved for envforge"):
        create_owned_database(pg_server, creating_name("envforge_x"), {"environment": "x"})
