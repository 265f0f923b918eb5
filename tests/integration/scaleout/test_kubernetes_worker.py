"""The scale-out path end to end: prefect.yaml's Kubernetes profile is deployed with ``prefect
deploy`` (its build step runs ``envforge image build`` FROM a Python base image and pushes to a
local registry), prefect-kubernetes' worker submits a flow run's Job to the real API server,
and on the real node (the default as root) the Job's pod pulls that image and runs the flow:
``prefect flow-run execute`` in the container reaches the test's Prefect server and the flow
run ends Completed, by the engine inside the pod.

The base image is Debian's python3 with envforge's dependencies at this checkout's versions
(scripts/services/images.sh python: debootstrap, built once into the cache), standing in for
python:3.11-slim, which no registry here serves. The Prefect server listens on 127.0.0.1 only:
the pod reaches it at the node's gateway (scripts/services/node.sh expose: a DNAT on the node's
link to this machine's loopback), so the flow run's job variables set PREFECT_API_URL to that
address, as a cluster's pool sets the URL its pods reach the server at.

With kwok (ENVFORGE_NODE=kwok, not root) nothing runs: the Job "completes" and the flow run
stays Pending, which the test checks instead.

The worker's pod observer (kopf; it marks a flow run Crashed when its Job fails) is switched off:
it takes ambient in-cluster or ~/.kube credentials, which a test on a shared machine does not
write. In a cluster the worker runs in-cluster and the observer has them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import pytest
import yaml
from pydantic import SecretStr

from blocks.vault import VaultConnection
from envforge.core.config import PROJECT_ROOT
from tests.helpers import git
from tests.integration.images.conftest import Registry
from tests.kube import ControlPlane

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.buildah]

POOL = "envforge-kubernetes"
DEPLOYMENT = "run-template-kubernetes"
PREFECT_FILE = "deploy/prefect-kubernetes.yaml"
VAULT_TOKEN = "scaleout-vault-token-do-not-leak-4242"
IMAGES_SCRIPT = PROJECT_ROOT / "scripts" / "services" / "images.sh"
NODE_SCRIPT = PROJECT_ROOT / "scripts" / "services" / "node.sh"
#: What the project image needs from the checkout (deploy/envforge.Containerfile copies these).
PROJECT_FILES = ["pyproject.toml", "README.md", "prefect.yaml", "envforge", "flows", "blocks",
                 "templates", "deploy"]


def profile() -> dict[str, Any]:
    document = yaml.safe_load((PROJECT_ROOT / PREFECT_FILE).read_text())
    return next(d for d in document["deployments"] if d["name"] == DEPLOYMENT)


@pytest.fixture
def project_repo(tmp_path: Path) -> Path:
    """A bare Git repository holding this checkout's project files, as envforge's image build
    wants a Git URL (the working tree, so uncommitted edits are what gets built)."""
    work, bare = tmp_path / "project", tmp_path / "project.git"
    work.mkdir()
    for name in PROJECT_FILES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, work / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, work / name)
    git("init", "--quiet", "--initial-branch=main", str(work))
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "envforge", cwd=work)
    git("clone", "--quiet", "--bare", str(work), str(bare))
    return bare


@pytest.fixture
def envforge_namespace(kube_control_plane: ControlPlane) -> str:
    """The profile's namespace and ServiceAccount (RBAC would be bound to it in a cluster)."""
    job_variables = profile()["work_pool"]["job_variables"]
    namespace, account = job_variables["namespace"], job_variables["service_account_name"]
    manifests = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                 {"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": {"name": account, "namespace": namespace}}]
    kube_control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": manifests}))
    return str(namespace)


async def create_pool(kubeconfig: Path) -> None:
    """The kubernetes-type pool, its cluster credentials in a KubernetesClusterConfig block
    (referenced by the base job template, never copied into a Job)."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect_kubernetes.credentials import KubernetesClusterConfig  # type: ignore[import-untyped]
    from prefect_kubernetes.worker import KubernetesWorker  # type: ignore[import-untyped]

    block_id = await KubernetesClusterConfig.from_file(kubeconfig).save(
        "scaleout-cluster", overwrite=True)
    template = KubernetesWorker.get_default_base_job_template()
    template["variables"]["properties"]["cluster_config"]["default"] = {
        "$ref": {"block_document_id": str(block_id)}}
    async with get_client() as client:
        await client.create_work_pool(
            WorkPoolCreate(name=POOL, type="kubernetes", base_job_template=template),
            overwrite=True)


def prefect_deploy(project: Path, registry: Registry, base_image: str, buildah: Path,
                   cwd: Path) -> None:
    """``prefect --no-prompt deploy --prefect-file deploy/prefect-kubernetes.yaml --name
    run-template-kubernetes``, as a user runs it."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "ENVFORGE_SOURCE_REPO": project.as_uri(), "ENVFORGE_SOURCE_REF": "main",
           "ENVFORGE_BASE_IMAGE": base_image, "ENVFORGE_REGISTRY": registry.access.host,
           "ENVFORGE_BUILDAH_ROOT": str(buildah)}
    done = subprocess.run([str(Path(sys.executable).parent / "prefect"), "--no-prompt",
                           "deploy", "--prefect-file", PREFECT_FILE,
                           "--name", DEPLOYMENT], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"prefect deploy failed:\n{done.stdout}\n{done.stderr}"


async def submit_one_flow_run(parameters: dict[str, Any],
                              job_variables: dict[str, Any] | None = None
                              ) -> tuple[UUID, Any]:
    """Create a flow run of the deployment and let one KubernetesWorker poll submit it."""
    from prefect import get_client
    from prefect_kubernetes.worker import KubernetesWorker

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(f"run-template/{DEPLOYMENT}")
        flow_run = await client.create_flow_run_from_deployment(
            deployment.id, parameters=parameters, job_variables=job_variables)
    async with KubernetesWorker(work_pool_name=POOL, limit=1) as worker:
        await worker.sync_with_backend()
        submitted = await worker.get_and_submit_flow_runs()
    assert [run.id for run in submitted] == [flow_run.id]
    async with get_client() as client:
        return flow_run.id, await client.read_flow_run(flow_run.id)


def read_flow_run_state(flow_run_id: UUID) -> str:
    from prefect import get_client

    async def read() -> str:
        async with get_client() as client:
            run = await client.read_flow_run(flow_run_id)
            return str(run.state.type.value if run.state else "")
    return asyncio.run(read())


def python_base_image(registry: Registry) -> str:
    """The cached Debian Python base image, copied into the test registry."""
    done = subprocess.run(["bash", str(IMAGES_SCRIPT), "push", "python",
                           f"{registry.access.host}/base/python:3.11"],
                          capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, f"the Python base image: {done.stderr}"
    return f"{registry.access.host}/base/python:3.11"


def api_url_for_pods(plane: ControlPlane) -> str:
    """The test's Prefect server (127.0.0.1:PORT) as the node's pods reach it."""
    from prefect.settings import PREFECT_API_URL

    url = urlsplit(str(PREFECT_API_URL.value()))
    assert url.hostname == "127.0.0.1" and url.port
    gateway = subprocess.run(["bash", str(NODE_SCRIPT), "expose", str(plane.kubeconfig.parent),
                              str(url.port)], capture_output=True, text=True,
                             check=True).stdout.strip()
    return url._replace(netloc=f"{gateway}:{url.port}").geturl()


def read_task_run_names(flow_run_id: UUID) -> set[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> set[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[flow_run_id])))
            return {run.name.rsplit("-", 1)[0] if run.name[-1:].isdigit() else run.name
                    for run in runs}
    return asyncio.run(read())


def wait_for_flow_run(flow_run_id: UUID, seconds: float) -> str:
    """The flow run's final state type, polled until it is final or ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    state = read_flow_run_state(flow_run_id)
    while state not in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") \
            and time.monotonic() < deadline:
        time.sleep(2)
        state = read_flow_run_state(flow_run_id)
    return state


# On the real node: the ~480 MB Python base copied into the registry, the flow image built on
# it and pulled by the node, the flow run to the end (1-3 min alone, several on a busy machine).
@pytest.mark.timeout(1800)
def test_worker_submits_the_profiles_job_to_the_real_api_server(
    kube_control_plane: ControlPlane, prefect_server: None, registry: Registry,
    base_image: str, buildah_storage: Path, project_repo: Path, envforge_namespace: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_node = kube_control_plane.node_kind == "real"
    if real_node:  # a base with Python: the pod runs the flow
        base_image = python_base_image(registry)
    monkeypatch.setenv("PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_ENABLED", "false")
    # A credential exists on the Prefect server; the flow run names its block, never its value.
    VaultConnection(address="http://127.0.0.1:8200", token=SecretStr(VAULT_TOKEN)).save(
        "scaleout-vault", overwrite=True)
    asyncio.run(create_pool(kube_control_plane.kubeconfig))
    checkout = tmp_path / "checkout"
    git("clone", "--quiet", str(project_repo), str(checkout))
    prefect_deploy(project_repo, registry, base_image, buildah_storage, cwd=checkout)

    parameters = {"template": "preview-app",
                  "parameters": {"name": "scaleout-1", "vaultBlock": "scaleout-vault",
                                 "repoUrl": "https://git.example.com/shop/app.git"},
                  "dry_run": True}
    job_variables = None
    if real_node:  # the profile's env, and where the pods reach this Prefect server
        job_variables = {"env": {**profile()["work_pool"]["job_variables"]["env"],
                                 "PREFECT_API_URL": api_url_for_pods(kube_control_plane)}}
    flow_run_id, flow_run = asyncio.run(submit_one_flow_run(parameters, job_variables))
    assert VAULT_TOKEN not in json.dumps(flow_run.parameters)  # the block's name travels

    # The worker reported the submission: Pending, with the Job as its infrastructure.
    assert flow_run.state is not None and flow_run.state.type.value == "PENDING"
    namespace, job_name = str(flow_run.infrastructure_pid).split(":")
    assert namespace == envforge_namespace
    job = json.loads(kube_control_plane.kubectl("get", "job", "-n", namespace, job_name,
                                                "-o", "json").stdout)

    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # image: built by `envforge image build` in the profile's build step, pushed, by digest
    repository, digest = container["image"].split("@")
    assert repository == f"{registry.access.host}/envforge" and digest.startswith("sha256:")
    tags = registry.tags("envforge")
    assert any(registry.digest("envforge", tag) == digest for tag in tags)
    assert container["imagePullPolicy"] == profile()["work_pool"]["job_variables"][
        "image_pull_policy"]
    # command: Prefect's engine entry point for this flow run
    assert container["args"] == ["prefect", "flow-run", "execute"]
    env = {e["name"]: e for e in container.get("env", [])}
    assert env["PREFECT__FLOW_RUN_ID"]["value"] == str(flow_run_id)
    for name, value in profile()["work_pool"]["job_variables"]["env"].items():
        assert env[name]["value"] == value
    # service account: the profile's, in the profile's namespace
    assert pod["serviceAccountName"] == profile()["work_pool"]["job_variables"][
        "service_account_name"]
    assert job["metadata"]["labels"]["prefect.io/flow-run-id"] == str(flow_run_id)
    # no secret values: not the block's credential, not the cluster's token, no literal
    # value under a credential-like name (only valueFrom would be acceptable there)
    cluster_token = yaml.safe_load(kube_control_plane.kubeconfig.read_text())["users"][0][
        "user"].get("token", "")
    text = json.dumps(job)
    assert VAULT_TOKEN not in text and (not cluster_token or cluster_token not in text)
    for name, entry in env.items():
        if any(word in name for word in ("TOKEN", "PASSWORD", "SECRET", "API_KEY")):
            assert "value" not in entry, f"{name} carries a literal value in the Job's env"
    assert "PREFECT_API_KEY" not in env

    if real_node:
        # The pod pulls the image by digest and the engine in it runs the flow to the end.
        state = wait_for_flow_run(flow_run_id, 420)

        def container() -> dict[str, Any]:
            pods = json.loads(kube_control_plane.kubectl(
                "get", "pods", "-n", namespace, "-l", f"job-name={job_name}", "-o",
                "json").stdout)
            found = [s for p in pods["items"] for s in p["status"].get("containerStatuses", [])]
            return dict(found[0]) if found else {}
        # the engine reports Completed just before its process exits: wait for the exit
        deadline = time.monotonic() + 60
        while "terminated" not in container().get("state", {}) and time.monotonic() < deadline:
            time.sleep(1)
        status = container()
        logs = kube_control_plane.kubectl("logs", "-n", namespace, f"job/{job_name}",
                                          check=False).stdout
        assert state == "COMPLETED", f"flow run {state}; pod log:\n{logs[-3000:]}"
        # the engine in the pod ran the template's steps as task runs (a dry run: no changes)
        assert {"image", "secrets", "deliver", "fetch-manifests", "publish"} <= \
            read_task_run_names(flow_run_id)
        assert status["containerID"].startswith("containerd://")
        assert status["imageID"].endswith("@" + digest)
        assert status["state"]["terminated"]["exitCode"] == 0
        assert VAULT_TOKEN not in logs
    else:
        # kwok "runs" the pod: the Job completes, yet nothing executed the flow, and the
        # flow run state still says so.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = json.loads(kube_control_plane.kubectl(
                "get", "job", "-n", namespace, job_name, "-o", "json").stdout)["status"]
            if status.get("succeeded"):
                break
            time.sleep(1)
        else:
            pytest.fail(f"the Job {namespace}/{job_name} did not complete in 90 s: {status}")
        assert read_flow_run_state(flow_run_id) == "PENDING"
    kube_control_plane.kubectl("delete", "job", "-n", namespace, job_name,
                               "--ignore-not-found", "--wait=false")
