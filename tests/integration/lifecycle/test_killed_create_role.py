"""A create killed after db:role made the environment's login: the clean-up (the next create,
or destroy) drops the role that run marked, with its database, and leaves a role another run
made alone. In-process: the intent is recorded as the runner records it, the database and the
role are made as db:seed and db:role make them (marked with the run), then the intent is
abandoned, as a worker's failed run leaves it."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from envforge.db.connection import ServerAddress
from envforge.db.roles import create_environment_role, role_name, scram_verifier
from envforge.db.safety import target_database_name, write_marker
from tests.integration.db.conftest import pg_server  # noqa: F401  (the session's PostgreSQL)
from tests.lifecycle_setup import use_postgres, use_templates

pytestmark = pytest.mark.postgres

TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: login-db}
spec:
  owner: group:platform
  type: service
  parameters:
    properties:
      name: {type: string}
  steps:
    - id: database
      action: db:seed
      input: {environment: "${{ parameters.name }}", schema: db/schema.sql}
    - id: login
      action: db:role
      input: {environment: "${{ parameters.name }}"}
"""


@pytest.fixture
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              pg_server: ServerAddress) -> Path:  # noqa: F811
    use_postgres(monkeypatch, pg_server)
    monkeypatch.delenv("KUBECONFIG", raising=False)  # no cluster: no Secret to delete
    return use_templates(tmp_path / "templates", monkeypatch, {"login-db": (TEMPLATE, {
        "db/schema.sql": "CREATE TABLE public.t (id int);\n"})})


def _make_database_and_role(server: ServerAddress, name: str, run_id: str) -> None:
    database = target_database_name(name)
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')  # type: ignore[arg-type]
        write_marker(conn, database, {"environment": name, "run_id": run_id,
                                      "role": "environment"})
    create_environment_role(server, name, scram_verifier("a-password-nobody-reads"), run_id)


def _roles(server: ServerAddress) -> set[str]:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}


def test_the_clean_up_of_a_failed_create_drops_the_role_its_run_made(
        templates: Path, pg_server: ServerAddress) -> None:  # noqa: F811
    from envforge.environments.intents import (
        DATABASE_ACTIONS,
        SECRET_ACTIONS,
        abandon_create,
        begin_create,
        recover_killed_create,
    )
    from envforge.templating.loader import load_template
    from tests.services_fixtures import make_services

    assert {"db:role", "db:container"} <= DATABASE_ACTIONS & SECRET_ACTIONS
    services = make_services()
    name = f"login-{os.getpid() % 10000}-{time.monotonic_ns() % 100000}"
    run_id = uuid.uuid4().hex
    intent = begin_create(services, name, load_template(templates / "login-db"), run_id, name)
    assert intent.databaseServers == [None] and intent.secrets
    _make_database_and_role(pg_server, name, run_id)
    abandon_create(services, intent)
    cleaned = recover_killed_create(services, name, committed=False)
    assert cleaned is not None and cleaned.problems == []
    assert cleaned.databases == [target_database_name(name), f"role {role_name(name)}"]
    assert role_name(name) not in _roles(pg_server)


def test_the_clean_up_leaves_a_role_another_run_made(
        templates: Path, pg_server: ServerAddress) -> None:  # noqa: F811
    from envforge.db.roles import drop_environment_role
    from envforge.environments.intents import abandon_create, begin_create, recover_killed_create
    from envforge.templating.loader import load_template
    from tests.services_fixtures import make_services

    services = make_services()
    name = f"login-{os.getpid() % 10000}-{time.monotonic_ns() % 100000}"
    intent = begin_create(services, name, load_template(templates / "login-db"), "run-killed",
                          name)
    _make_database_and_role(pg_server, name, "run-earlier")  # not the killed run's
    abandon_create(services, intent)
    try:
        cleaned = recover_killed_create(services, name, committed=False)
        assert cleaned is not None and cleaned.databases == []
        assert role_name(name) in _roles(pg_server)
    finally:
        drop_environment_role(pg_server.with_database("postgres"), name)
        with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{target_database_name(name)}"')  # type: ignore[arg-type]
