"""A create killed (SIGKILL) after its database exists and before its GitOps commit: the
database is recorded before it is made, ``env list`` shows the environment as incomplete,
the next create of the name cleans up and creates it, and ``env destroy`` cleans it up.

Real parts: the session's PostgreSQL, the embedded GitOps repository, the envforge CLI in a
subprocess. The pause point is the template's own debug:wait step between db:seed and the
commit; the test kills the process once the database really exists, not after a guessed
sleep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from envforge.cli import main
from envforge.db.connection import ServerAddress
from tests.helpers import remote_files
from tests.integration.db.conftest import pg_server  # noqa: F401  (the session's PostgreSQL)
from tests.lifecycle_setup import embedded_remote, use_postgres, use_templates

pytestmark = pytest.mark.postgres

TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: slow-db}
spec:
  owner: group:platform
  type: service
  parameters:
    properties:
      name: {type: string}
      pause: {type: number, default: 0}
  steps:
    - id: database
      action: db:seed
      input: {environment: "${{ parameters.name }}", schema: db/schema.sql}
    - id: pause
      action: debug:wait
      input: {seconds: "${{ parameters.pause }}"}
    - id: fetch
      action: fetch:template
      input:
        url: ./skeleton
        values: {database: "${{ steps.database.output.database }}"}
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
data:
  database: ${{ values.database }}
"""


@pytest.fixture
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              pg_server: ServerAddress) -> Path:  # noqa: F811
    use_postgres(monkeypatch, pg_server)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return use_templates(tmp_path / "templates", monkeypatch, {"slow-db": (TEMPLATE, {
        "skeleton/manifests/configmap.yaml": CONFIGMAP,
        "db/schema.sql": "CREATE TABLE public.t (id int);\n"})})


def _database_exists(server: ServerAddress, name: str) -> bool:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (name,)).fetchone() is not None


def _owner_run(server: ServerAddress, name: str) -> str | None:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                           "WHERE datname = %s", (name,)).fetchone()
    if row is None or not row[0]:
        return None
    return str(json.loads(str(row[0]).removeprefix("envforge:owned")).get("run_id"))


@pytest.fixture
def killed_create(templates: Path, pg_server: ServerAddress,  # noqa: F811
                  ) -> Iterator[tuple[str, str]]:
    """Start ``envforge env create`` in a subprocess, wait until its database exists (it is
    then in the debug:wait step, before publish:gitops), SIGKILL it. Yields the environment
    and database names."""
    name = f"killed-{os.getpid() % 10000}-{time.monotonic_ns() % 100000}"
    database = "envforge_" + name.replace("-", "_")
    cli = Path(sys.executable).with_name("envforge")
    process = subprocess.Popen(
        [str(cli), "env", "create", name, "--template", "slow-db", "--set", "pause=300"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 90
        while not _database_exists(pg_server, database):
            if process.poll() is not None:
                out = process.stdout.read().decode() if process.stdout else ""
                raise AssertionError(f"the create ended before its database existed: {out}")
            if time.monotonic() > deadline:
                raise AssertionError("the create's database did not appear in 90 s")
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        yield name, database
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def _env_rows(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    capsys.readouterr()
    assert main(["env", "list", "--output", "json"]) == 0
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)}


def test_a_create_killed_before_its_commit_is_shown_then_finished_by_the_next_create(
        killed_create: tuple[str, str], pg_server: ServerAddress,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    name, database = killed_create
    remote = embedded_remote()
    assert not any(f.startswith(f"environments/{name}/") for f in remote_files(remote))
    killed_run = _owner_run(pg_server, database)
    assert killed_run  # the orphan: made by the killed run, no commit

    rows = _env_rows(capsys)
    assert name in rows, "env list does not show the killed create"
    assert str(rows[name]["state"]).startswith("incomplete (killed during create")
    assert rows[name]["run"] == killed_run

    # the name is not blocked: the next create cleans up and creates it
    assert main(["env", "create", name, "--template", "slow-db"]) == 0
    captured = capsys.readouterr()
    assert f"created environment {name}" in captured.out
    assert f"cleaned up the create of {name!r} killed in run {killed_run}" in captured.err
    assert f"environments/{name}/environment.yaml" in remote_files(remote)
    new_run = _owner_run(pg_server, database)
    assert new_run and new_run != killed_run  # the database is the new run's
    rows = _env_rows(capsys)
    assert rows[name]["state"] == "awake"  # a normal environment now, no intent left

    assert main(["env", "destroy", name]) == 0
    assert not _database_exists(pg_server, database)


def test_destroy_cleans_up_a_killed_create(
        killed_create: tuple[str, str], pg_server: ServerAddress,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    name, database = killed_create
    capsys.readouterr()
    assert main(["env", "destroy", name]) == 0
    assert f"cleaned up the create of {name!r}" in capsys.readouterr().out
    assert not _database_exists(pg_server, database)
    assert name not in _env_rows(capsys)
    # and the name is free for a create of its own
    assert main(["env", "create", name, "--template", "slow-db"]) == 0
    assert _database_exists(pg_server, database)
    assert main(["env", "destroy", name]) == 0


def test_a_database_of_another_run_is_never_dropped_by_the_clean_up(
        killed_create: tuple[str, str], pg_server: ServerAddress,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    """The clean-up drops only what the killed run marked as its own: a database of the same
    name re-made by someone else in between (another run id) stays."""
    name, database = killed_create
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        conn.execute(f'COMMENT ON DATABASE "{database}" IS '
                     f"'envforge:owned {{\"environment\": \"{name}\", \"run_id\": \"other\"}}'")
    capsys.readouterr()
    assert main(["env", "destroy", name]) == 0
    assert "dropped no database" in capsys.readouterr().out
    assert _database_exists(pg_server, database)
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{database}"')


@pytest.mark.prefect
def test_the_create_environment_flow_cleans_up_a_killed_create_too(
        prefect_server: None, killed_create: tuple[str, str],
        pg_server: ServerAddress,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    """The flow entry point (run button, API, webhook) goes through the same intent: it
    cleans up after the killed CLI create, creates the environment, and leaves no intent."""
    from flows.environments import create_environment, destroy_environment

    name, database = killed_create
    killed_run = _owner_run(pg_server, database)
    # the template is one of this test's: skip the form's enum of the project's templates
    flow = create_environment.with_options(validate_parameters=False)
    created = flow(name, template="slow-db")
    assert created["mode"] == "create" and created["commit"]
    new_run = _owner_run(pg_server, database)
    assert new_run and new_run != killed_run
    rows = _env_rows(capsys)
    assert rows[name]["state"] == "awake" and "run" not in rows[name]

    destroyed = destroy_environment(name)
    assert destroyed["databases"] == [database]
    assert name not in _env_rows(capsys)


def test_a_live_create_blocks_the_name_until_it_ends_or_is_abandoned(
        templates: Path) -> None:
    """Another create of a name a live process is creating is refused; a create that failed
    and left resources in a process that lives on (a worker) is marked abandoned, and the
    next create cleans up after it at once."""
    from envforge.environments.intents import (
        abandon_create,
        begin_create,
        list_intents,
        recover_killed_create,
    )
    from envforge.errors import EnvironmentExistsError
    from envforge.templating.loader import load_template
    from tests.services_fixtures import make_services

    services = make_services()
    template = load_template(templates / "slow-db")
    intent = begin_create(services, "busy-1", template, "run-a", "busy-1")
    with pytest.raises(EnvironmentExistsError, match="is being created by run run-a"):
        begin_create(services, "busy-1", template, "run-b", "busy-1")
    with pytest.raises(EnvironmentExistsError, match=f"process {os.getpid()} on"):
        recover_killed_create(services, "busy-1", committed=False)
    abandon_create(services, intent)
    [shown] = list_intents(services)
    assert shown.describe().startswith("incomplete (create failed and left resources")
    cleaned = recover_killed_create(services, "busy-1", committed=False)
    assert cleaned is not None and cleaned.intent.runId == "run-a"
    assert list_intents(services) == []


def test_a_reused_pid_is_not_taken_for_the_process_that_recorded_it() -> None:
    from envforge.core.processes import current_process

    me = current_process()
    assert me.alive()
    assert me.startTicks is not None
    assert not me.model_copy(update={"startTicks": me.startTicks + 1}).alive()
    assert not me.model_copy(update={"bootId": "another-boot"}).alive()
