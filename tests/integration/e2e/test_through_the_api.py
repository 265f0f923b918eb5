"""The lifecycle as UI and API users drive it: deployments registered from prefect.yaml, flow
runs created through the Prefect API, a real process worker running them. Create a preview
environment with an anonymised clone of production, a Vault secret and an image build; list
it; update it on a new commit; bind a domain; let the reaper destroy an expired one; destroy
the other. Git, the database server, the registry and the cluster are checked after each."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from envforge.core.config import PROJECT_ROOT
from envforge.db.connection import ServerAddress
from tests.helpers import commit_count, remote_files, start_warm_runner
from tests.integration.e2e.conftest import (
    API_KEY,
    World,
    cluster_secret,
    wait_synced_and_healthy,
)
from tests.integration.images.conftest import commit_to

pytestmark = [pytest.mark.prefect, pytest.mark.buildah, pytest.mark.postgres, pytest.mark.slow]

POOL = "envforge-process"


@pytest.fixture
def production(world: World) -> ServerAddress:
    """A 'production' database with personal data, and the blocks preview-app names."""
    from pydantic import SecretStr

    from blocks.database import AnonymisationKey, DatabaseServer

    server = world.database
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS shop")
        conn.execute("CREATE DATABASE shop")
    schema = (PROJECT_ROOT / "templates" / "preview-app" / "db" / "schema.sql").read_text()
    with psycopg.connect(server.with_database("shop").conninfo(), autocommit=True) as conn:
        conn.execute(schema)
        conn.execute("INSERT INTO public.customers (email, full_name) SELECT 'person' || g || "
                     "'@real-mail.example', 'Real Person ' || g FROM generate_series(1, 300) g")
        conn.execute("INSERT INTO public.orders (customer_id, total_cents) "
                     "SELECT 1 + g % 300, g FROM generate_series(1, 900) g")
    DatabaseServer(host=server.host, port=server.port, user=server.user).save(
        "production", overwrite=True)
    AnonymisationKey(key=SecretStr("e2e-anonymisation-key-0123456789")).save(
        "anonymisation-key", overwrite=True)
    return server


@pytest.fixture
def worker(world: World, prefect_server: None, tmp_path: Path) -> Iterator[Path]:
    """prefect.yaml's deployments on the session's server, a worker for their pool and a warm
    runner beside it, as scripts/prefect-local.sh starts them; the warm runner's log."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"), overwrite=True)
    warm_socket, warm_log = tmp_path / "warm" / "socket", tmp_path / "warm.log"
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "ENVFORGE_PROJECT_DIR": str(PROJECT_ROOT),
           "ENVFORGE_WARM_RUNNER_SOCKET": str(warm_socket)}
    subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
                   cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, timeout=300)
    warm = start_warm_runner(warm_socket, warm_log, env)
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--limit", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield warm_log
    finally:
        for started in (process, warm):
            started.terminate()
            try:
                started.wait(timeout=30)
            except subprocess.TimeoutExpired:
                started.kill()


def _run(deployment: str, parameters: dict[str, Any]) -> Any:
    """A flow run created through the Prefect API, as the UI's Run button does; waits."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(
            client.read_deployment_by_name(deployment).id, parameters=parameters)
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            run = client.read_flow_run(run.id)
            if run.state is not None and run.state.is_final():
                break
            time.sleep(1)
    assert run.state is not None and run.state.is_completed(), (deployment, run.state)
    return run


def _cli_json(*args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "envforge", *args], check=True,
                         capture_output=True, text=True, env=os.environ).stdout
    return json.loads(out)


def _log_lines(flow_run_id: Any) -> list[str]:
    """What a flow run logged, as the Prefect UI shows it. The engine sends its last batch of
    logs as it exits, after the run's final state is set, so wait (bounded) for its last line."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            if time.monotonic() > deadline or any(
                    log.task_run_id is None and log.message.startswith("Finished in state")
                    for log in logs):
                return [log.message for log in logs]
            time.sleep(0.2)


def _replicas(world: World, namespace: str) -> int:
    """spec.replicas of the environment's Deployments on the real API server, summed."""
    done = world.cluster.plane.kubectl("get", "deployments", "-n", namespace, "-o", "json")
    return sum(int(d["spec"].get("replicas", 1)) for d in json.loads(done.stdout)["items"])


def _databases(server: ServerAddress) -> set[str]:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def test_the_lifecycle_through_the_prefect_api(world: World, production: ServerAddress,
                                               worker: Path) -> None:
    params = {"repoUrl": world.app_repo.as_uri(), "imageRegistry": world.registry.access.address,
              "registryTls": False, "database": "clone"}
    create = "create-environment/create-environment"

    # create: anonymised clone, Vault secret, image build
    _run(create, {"name": "pr-31", "template": "preview-app", "parameters": params,
                  "source": {"repository": world.app_repo.as_uri(), "pullRequest": 31}})
    assert "environments/pr-31/environment.yaml" in remote_files(world.gitops)
    assert "envforge_pr_31" in _databases(production)
    with psycopg.connect(production.with_database("envforge_pr_31").conninfo()) as conn:
        emails = [r[0] for r in conn.execute("SELECT email FROM public.customers")]
    assert len(emails) == 300 and not any("real-mail.example" in e for e in emails)
    tags_before = world.registry.tags("pr-31")
    assert tags_before
    secret = cluster_secret(world, "pr-31", "pr-31-secrets")  # on the real API server
    assert secret is not None and base64.b64decode(secret["API_KEY"]).decode() == API_KEY
    wait_synced_and_healthy(world, "pr-31")  # Argo CD deployed it

    # the run's summary artifact: URL, image by digest, database with strategy and rows
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        summary = str(client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["env-pr-31"])),
            sort=ArtifactSort.CREATED_DESC, limit=1)[0].data)
    assert "https://pr-31-" in summary and "sha256:" in summary
    assert "| clone | 1,200 |" in summary and API_KEY not in summary, summary  # 300 + 900 rows

    # list, as a person would
    listed = {e["name"]: e for e in _cli_json("env", "list", "--output", "json")}
    assert listed["pr-31"]["template"] == "preview-app"

    # update on a new commit: a new image, the same database
    commit_to(world.app_repo, {"index.html": "<p>v2</p>\n"}, "main")
    _run(create, {"name": "pr-31", "parameters": {"ref": "main"}})
    assert len(world.registry.tags("pr-31")) == len(tags_before) + 1
    assert "envforge_pr_31" in _databases(production)

    # refresh its data: the clone is made again, replacing what the environment wrote
    with psycopg.connect(production.with_database("envforge_pr_31").conninfo(),
                         autocommit=True) as conn:
        conn.execute("DELETE FROM public.orders")
    _run("refresh-data/refresh-data", {"names": ["pr-31"]})
    with psycopg.connect(production.with_database("envforge_pr_31").conninfo()) as conn:
        row = conn.execute("SELECT count(*) FROM public.orders").fetchone()
    assert row is not None and row[0] == 900

    # bind a custom domain
    _run("bind-domain/bind-domain", {"name": "pr-31", "host": "shop-pr-31.example.com"})
    assert any("envforge-domain-" in f for f in remote_files(world.gitops)
               if f.startswith("environments/pr-31/"))

    # a short-lived second environment, reaped once expired
    _run(create, {"name": "pr-32", "template": "preview-app", "ttl": "1s",
                  "parameters": {**params, "database": "seed", "vaultSecrets": False}})
    assert "envforge_pr_32" in _databases(production)
    time.sleep(1.5)
    _run("reap-environments/reap-environments", {})
    assert not any(f.startswith("environments/pr-32/") for f in remote_files(world.gitops))
    assert "envforge_pr_32" not in _databases(production)
    assert "environments/pr-31/environment.yaml" in remote_files(world.gitops)  # not expired

    # day two: an upgrade re-renders only; preview-app's manifests take the image build's
    # output, which the upgrade carries forward from pr-31's files (envforge.environments.upgrade_outputs),
    # so with the template unchanged the re-rendered files are pr-31's own: unchanged, nothing
    # committed (never a placeholder image). Sleep scales the workloads to zero through Git
    # (Argo CD applies it), wake restores them.
    commits = commit_count(world.gitops)
    upgraded = _run("upgrade-environments/upgrade-environments", {"names": ["pr-31"]})
    assert commit_count(world.gitops) == commits
    lines = _log_lines(upgraded.id)
    assert any("pr-31: unchanged" in line for line in lines), lines
    _run("sleep-environment/sleep-environment", {"name": "pr-31", "reason": "e2e"})
    listed = {e["name"]: e for e in _cli_json("env", "list", "--output", "json")}
    assert listed["pr-31"]["state"] == "asleep"
    wait_synced_and_healthy(world, "pr-31")
    assert _replicas(world, "pr-31") == 0
    _run("wake-environment/wake-environment", {"name": "pr-31"})
    wait_synced_and_healthy(world, "pr-31")
    assert _replicas(world, "pr-31") == 1
    assert commit_count(world.gitops) == commits + 2  # one commit each

    # destroy the other
    _run("destroy-environment/destroy-environment", {"name": "pr-31"})
    assert not any(f.startswith("environments/pr-31/") for f in remote_files(world.gitops))
    assert "envforge_pr_31" not in _databases(production)
    assert cluster_secret(world, "pr-31", "pr-31-secrets") is None
    assert _cli_json("env", "list", "--output", "json") == []

    # every run above started as an engine forked from the warm runner, and ended well
    ran = re.findall(r"flow run ([0-9a-f-]{36}): engine pid \d+ exit (\d+)", worker.read_text())
    assert len(ran) >= 10 and all(code == "0" for _, code in ran), worker.read_text()


def test_the_database_failing_mid_run_leaves_nothing(prefect_server: None, world: World,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The database server unreachable after the image was built: the image is taken back."""
    import socket

    from envforge.errors import StepFailedError
    from flows.environments import create_environment

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("PGPORT", str(dead))
    with pytest.raises(StepFailedError) as info:
        create_environment("pr-41", template="preview-app", parameters={
            "repoUrl": world.app_repo.as_uri(), "database": "seed",
            "imageRegistry": world.registry.access.address, "registryTls": False})
    # image, database and secrets run side by side: what completed (the image build and the
    # Vault read finish after the database fails fast; on a fast machine the delivery of the
    # Secret and the manifests, which need only those two, may have run too) is rolled back,
    # newest first
    assert info.value.step_id == "database-seed"
    assert {"image", "secrets"} <= set(info.value.rolled_back) <= {
        "image", "secrets", "deliver", "fetch-manifests"}
    assert cluster_secret(world, "pr-41", "pr-41-secrets") is None  # delivered or not: gone
    assert str(dead) in str(info.value)
    assert world.registry.tags("pr-41") == []


def test_a_sealed_vault_mid_run_leaves_nothing(prefect_server: None, world: World) -> None:
    """Vault failing after the image and the database were made: both are taken back."""
    from envforge.errors import StepFailedError, VaultSealedError
    from flows.environments import create_environment

    bao = world.vault.bao
    if bao is None:
        pytest.skip("seals the session's OpenBao; VAULT_ADDR points at a Vault of your own")
    head = subprocess.run(["git", "--git-dir", str(world.gitops), "rev-parse", "main"],
                          capture_output=True, text=True, check=True).stdout
    with bao.sealed(), pytest.raises(StepFailedError) as info:
        create_environment("pr-40", template="preview-app", parameters={
            "repoUrl": world.app_repo.as_uri(), "database": "seed",
            "imageRegistry": world.registry.access.address, "registryTls": False})
    assert info.value.step_id == "secrets"
    assert isinstance(info.value.__cause__, VaultSealedError)
    assert sorted(info.value.rolled_back) == ["database-seed", "image"]  # ran side by side
    assert "envforge_pr_40" not in _databases(world.database)
    assert world.registry.tags("pr-40") == []
    assert subprocess.run(["git", "--git-dir", str(world.gitops), "rev-parse", "main"],
                          capture_output=True, text=True, check=True).stdout == head


