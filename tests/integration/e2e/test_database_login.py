"""preview-app's ``databaseLogin`` end to end on the real node: the environment's app logs in to
its seeded database as its own role (db:role: ``envforge_<name>``, SCRAM-SHA-256) with the
password delivered as the Secret ``<name>-db-login``, through a PostgreSQL whose pg_hba is the
demo's: the tools on this machine (127.0.0.1) trusted, the pods (which node.sh expose presents
as 127.0.0.2) only by SCRAM, only as their own role into their own database. The URL answers
200 with the rows; a wrong password in the Secret is refused by the server; the password is in
no Git object, flow result or server log; destroy drops the role and deletes the Secret."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from envforge.core.config import PROJECT_ROOT
from envforge.images.builders import BuildahBuilder
from tests.helpers import git
from tests.integration.e2e.conftest import (
    World,
    cluster_secret,
    get_through_ingress,
    wait_synced_and_healthy,
)

pytestmark = [pytest.mark.prefect, pytest.mark.buildah, pytest.mark.postgres, pytest.mark.slow]

APP_SOURCE = PROJECT_ROOT / "templates" / "preview-app" / "app"
POSTGRES_SCRIPT = PROJECT_ROOT / "scripts" / "services" / "postgres.sh"
NODE_SCRIPT = PROJECT_ROOT / "scripts" / "services" / "node.sh"
POD_SOURCE = "127.0.0.2"
HBA = f"""\
local all all trust
host all all 127.0.0.1/32 trust
host sameuser all {POD_SOURCE}/32 scram-sha-256
"""


@dataclass(frozen=True)
class ScramServer:
    port: int
    log: Path


@pytest.fixture(scope="module")
def scram_server() -> Iterator[ScramServer]:
    """A PostgreSQL of its own with the demo's pg_hba and every statement logged."""
    directory = Path(tempfile.mkdtemp(prefix="envforge-login-pg-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])

    def run(*args: str) -> None:
        done = subprocess.run(["bash", str(POSTGRES_SCRIPT), *args], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"postgres.sh {args[0]}: {done.stderr}")

    try:
        run("start", str(directory), str(port))
        run("stop", str(directory))
        (directory / "data" / "pg_hba.conf").write_text(HBA)
        with (directory / "data" / "postgresql.auto.conf").open("a") as conf:
            conf.write("log_statement = 'all'\nlog_connections = on\n")
        run("start", str(directory), str(port))
        yield ScramServer(port, directory / "server.log")
    finally:
        subprocess.run(["bash", str(POSTGRES_SCRIPT), "stop", str(directory)], check=False)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def login_shop_image(registry: Any, builder: BuildahBuilder,
                     tmp_path_factory: pytest.TempPathFactory) -> str:
    """templates/preview-app/app (static Go) as a one-layer image in the registry."""
    base = tmp_path_factory.mktemp("login-shop")
    subprocess.run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(base / "shop"),
                    "."], cwd=APP_SOURCE, check=True, capture_output=True,
                   env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"})
    (base / "Containerfile").write_text('FROM scratch\nCOPY shop /shop\nUSER 10001\n'
                                        'ENTRYPOINT ["/shop"]\n')
    image = f"{registry.access.host}/demo/login-shop:1"
    options = builder.global_options()
    subprocess.run([*options, "bud", "--isolation", "chroot", "-t", image, "-f",
                    str(base / "Containerfile"), str(base)], check=True, capture_output=True)
    subprocess.run([*options, "push", "--tls-verify=false", image, f"docker://{image}"],
                   check=True, capture_output=True)
    return image


def _app_repo(image: str, tmp_path: Path) -> Path:
    work, bare = tmp_path / "shop-work", tmp_path / "shop-login.git"
    git("init", "--quiet", "--initial-branch=main", str(work))
    (work / "Dockerfile").write_text(f"FROM {image}\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "shop", cwd=work)
    git("clone", "--quiet", "--bare", str(work), str(bare))
    return bare


def _answer(world: World, url: str, want: str, seconds: float = 240) -> str:
    """The page (200) or the refusal (503) once it contains ``want``; the last one in the
    failure."""
    deadline = time.monotonic() + seconds
    last = ""
    while time.monotonic() < deadline:
        try:
            last = "HTTP 200: " + get_through_ingress(world, url, seconds=5)
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}: {e.read().decode(errors='replace')[:400]}"
        if want in last:
            return last
        time.sleep(1)
    raise AssertionError(f"{url} never answered with {want!r} in {seconds:.0f} s; last: {last}")


def _flow_runs_text(flow_run_id: Any) -> str:
    """The flow run's and its subflow runs' parameters, state messages and logs, as stored by
    the Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        runs = [client.read_flow_run(flow_run_id)]
        runs += client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))
        ids = [run.id for run in runs]
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=ids)))
    texts = [json.dumps(run.parameters, default=str) for run in runs]
    texts += [str(run.state.message if run.state else "") for run in runs]
    texts += [str(task.state.message if task.state else "") for task in tasks]
    texts += [entry.message for entry in logs]
    assert any("db-login" in entry.message for entry in logs), "no log of the run arrived"
    return "\n".join(texts)


def _roles(port: int) -> set[str]:
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}


@pytest.mark.timeout(900)
def test_the_app_logs_in_with_its_own_role_and_a_wrong_password_is_refused(
        prefect_server: None, world: World, scram_server: ScramServer, login_shop_image: str,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.environments import create_environment, destroy_environment

    plane = world.cluster.plane
    if plane.node_kind != "real":
        pytest.skip("no container runs on a kwok node (ENVFORGE_NODE=kwok)")
    gateway = subprocess.run(["bash", str(NODE_SCRIPT), "expose", str(plane.kubeconfig.parent),
                              str(scram_server.port)], capture_output=True, text=True,
                             check=True, env={**os.environ, "ENVFORGE_EXPOSE_SOURCE": POD_SOURCE}
                             ).stdout.strip()
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(scram_server.port))
    monkeypatch.setenv("PGUSER", "postgres")
    name = f"login-{uuid.uuid4().hex[:6]}"
    role = f"envforge_{name.replace('-', '_')}"
    parameters: dict[str, Any] = {
        "repoUrl": _app_repo(login_shop_image, tmp_path).as_uri(),
        "imageRegistry": world.registry.access.address, "registryTls": False,
        "database": "seed", "databaseLogin": True, "databaseHost": gateway,
        "databasePort": scram_server.port, "databaseUser": "postgres"}
    state = create_environment(name, template="preview-app", parameters=parameters,
                               return_state=True)
    created = state.result()
    steps = {s["id"]: s["status"] for s in created["run"]["steps"]}
    assert steps["database-seed"] == steps["database-role"] == "completed"

    secret = cluster_secret(world, name, f"{name}-db-login")
    assert secret is not None and set(secret) == {"PGUSER", "PGPASSWORD", "PGDATABASE"}
    assert base64.b64decode(secret["PGUSER"]).decode() == role
    password = base64.b64decode(secret["PGPASSWORD"]).decode()
    assert len(password) >= 32 and role in _roles(scram_server.port)

    wait_synced_and_healthy(world, name, seconds=300)
    page = _answer(world, created["url"], f"customers of {role} (50 in all")
    assert page.startswith("HTTP 200: ") and password not in page
    log = scram_server.log.read_text(errors="replace")
    # the pods came from 127.0.0.2 and SCRAM let the role in (log_connections)
    assert f"connection authorized: user={role} database={role}" in log
    assert f"connection authenticated: identity=\"{role}\" method=scram-sha-256" in log

    # a wrong password in the Secret: the new pod is refused by the server itself
    wrong = base64.b64encode(b"not-the-password").decode()
    plane.kubectl("-n", name, "patch", "secret", f"{name}-db-login", "--type", "merge", "-p",
                  json.dumps({"data": {"PGPASSWORD": wrong}}))
    plane.kubectl("-n", name, "delete", "pod", "-l", f"app.kubernetes.io/name={name}",
                  "--wait=false")
    refused = _answer(world, created["url"],
                      f'password authentication failed for user "{role}"')
    assert refused.startswith("HTTP 503: ")
    assert password not in refused

    # the password is nowhere it must not be
    objects = subprocess.run(["git", "--git-dir", str(world.gitops), "cat-file",
                              "--batch-all-objects", "--batch"], capture_output=True,
                             check=True).stdout.decode("utf-8", "replace")
    assert password not in objects
    assert password not in json.dumps(created, default=str)
    assert password not in _flow_runs_text(state.state_details.flow_run_id)
    assert password not in scram_server.log.read_text(errors="replace")
    assert "SCRAM-SHA-256$4096:" in scram_server.log.read_text(errors="replace")

    destroyed = destroy_environment(name)
    assert destroyed["problems"] == [], destroyed
    assert role not in _roles(scram_server.port)
    assert cluster_secret(world, name, f"{name}-db-login") is None


def test_a_later_failure_drops_the_role_and_deletes_its_secret(
        prefect_server: None, world: World, scram_server: ScramServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A step failing after db:role (it reads the step's output, so it runs after it): the
    rollback deletes the Secret and drops the role; no commit, no database."""
    import yaml

    from envforge.errors import StepFailedError
    from flows.environments import create_environment

    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(scram_server.port))
    monkeypatch.setenv("PGUSER", "postgres")
    path = world.templates / "preview-app" / "template.yaml"
    template = yaml.safe_load(path.read_text())
    steps = template["spec"]["steps"]
    boom = {"id": "boom", "action": "debug:wait",
            "input": {"seconds": "never${{ steps['database-role'].output.secretName }}"}}
    steps.insert(next(i for i, s in enumerate(steps) if s["id"] == "database-role") + 1, boom)
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    name = f"loginrb-{uuid.uuid4().hex[:6]}"
    role = f"envforge_{name.replace('-', '_')}"
    head = git("--git-dir", str(world.gitops), "rev-parse", "main")
    with pytest.raises(StepFailedError) as info:
        create_environment(name, template="preview-app", parameters={
            "repoUrl": world.app_repo.as_uri(), "imageRegistry": world.registry.access.address,
            "registryTls": False, "database": "seed", "databaseLogin": True})
    assert info.value.step_id == "boom" and info.value.rollback_failures == []
    assert git("--git-dir", str(world.gitops), "rev-parse", "main") == head
    assert role not in _roles(scram_server.port)
    assert cluster_secret(world, name, f"{name}-db-login") is None
    with psycopg.connect(host="127.0.0.1", port=scram_server.port, user="postgres",
                         dbname="postgres", autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (role,)).fetchone() is None
