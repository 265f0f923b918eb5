"""Everything at once, for the end-to-end tests: PostgreSQL, the registry and buildah, OpenBao
(or a Vault of your own from ENVFORGE_TEST_VAULT_ADDR/_TOKEN), the session's real Kubernetes API
server with the session's real Argo CD syncing a GitOps remote into it (an app-of-apps per test,
its Applications deleted afterwards), and an application repository whose Dockerfile builds on
the local base image. The services are the other areas' session fixtures, shared rather than
started twice."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envforge.core.config import PROJECT_ROOT
from envforge.db.connection import ServerAddress
from tests.integration.db.conftest import pg_server
from tests.integration.images.conftest import (
    Registry,
    base_image,
    buildah_storage,
    builder,
    make_repo,
    registry,
)
from tests.integration.lifecycle.conftest import argocd, gitops, kubeconfig
from tests.integration.secrets.conftest import (
    ClusterTarget,
    VaultTarget,
    cluster_target,
    vault_service,
)

__all__ = ["argocd", "base_image", "buildah_storage", "builder",
           "cluster_target", "gitops", "kubeconfig", "make_repo", "pg_server", "registry",
           "vault_service"]

API_KEY = f"api-key-{uuid.uuid4().hex}"  # a secret value that must never leak


@dataclass
class World:
    gitops: Path
    app_repo: Path
    registry: Registry
    database: ServerAddress
    vault: VaultTarget
    cluster: ClusterTarget
    templates: Path


@pytest.fixture
def world(gitops: Path, make_repo: Callable[..., Path], registry: Registry, base_image: str,
          buildah_storage: Path, pg_server: ServerAddress, vault_service: VaultTarget,
          cluster_target: ClusterTarget, argocd: str, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> World:
    # the application: busybox's httpd serving /www on preview-app's port, /healthz for its
    # probes; PID 1 a shell that exits on SIGTERM (a pod deletion does not wait out 30 s)
    app = make_repo({"Dockerfile": f"FROM {base_image}\nCOPY index.html healthz /www/\n"
                     "USER 10001\nCMD [\"sh\", \"-c\", \"trap 'exit 0' TERM; "
                     "httpd -f -p ${PORT:-8080} -h /www & wait\"]\n",
                     "index.html": "<p>shop</p>\n", "healthz": "ok\n"}, name="shop")
    monkeypatch.setenv("ENVFORGE_BUILDAH_ROOT", str(buildah_storage))
    monkeypatch.setenv("PGHOST", pg_server.host)
    monkeypatch.setenv("PGPORT", str(pg_server.port))
    monkeypatch.setenv("PGUSER", pg_server.user)
    monkeypatch.setenv("VAULT_ADDR", vault_service.address)
    monkeypatch.setenv("VAULT_TOKEN", vault_service.root_token)
    monkeypatch.setenv("KUBECONFIG", str(cluster_target.kubeconfig))  # the real API server
    vault_service.put_secret("preview-app/api", {"key": API_KEY})
    # a private copy of the templates, so a test may add a failing step to preview-app
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates" / "preview-app", templates / "preview-app")
    monkeypatch.setenv("ENVFORGE_TEMPLATES_PATH", str(templates))
    return World(gitops, app, registry, pg_server, vault_service, cluster_target, templates)


def cluster_secret(world: World, namespace: str, name: str) -> dict[str, str] | None:
    """A Secret's data as the real API server has it, or None."""
    done = world.cluster.plane.kubectl("get", "secret", "-n", namespace, name, "-o", "json",
                                       check=False)
    if done.returncode != 0:
        assert "NotFound" in done.stderr, done.stderr
        return None
    return dict(json.loads(done.stdout).get("data") or {})


def get_through_ingress(world: World, url: str, seconds: float = 60) -> str:
    """The body of ``url`` through the cluster's ingress controller (Traefik on 127.0.0.1,
    the URL's host in the Host header), once it routes that host (it may answer 404 for a
    second or two after the pod's endpoints appear). Skips where there is none (kwok)."""
    port = world.cluster.plane.ingress_port
    if port is None:
        pytest.skip("no ingress controller: the cluster's node is kwok (ENVFORGE_NODE=kwok)")
    parts = urllib.parse.urlsplit(url)
    request = urllib.request.Request(f"http://127.0.0.1:{port}{parts.path or '/'}",
                                     headers={"Host": str(parts.hostname)})
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return str(answer.read().decode())
        except urllib.error.HTTPError as e:
            if e.code not in (404, 502, 503) or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def wait_synced_and_healthy(world: World, name: str, seconds: float = 180) -> dict[str, Any]:
    """The environment's Application once Argo CD synced the head of main and
    its resources are Healthy on the real API server."""
    head = subprocess.run(["git", "--git-dir", str(world.gitops), "rev-parse", "main"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deadline = time.monotonic() + seconds
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        done = world.cluster.plane.kubectl("get", "application", "-n", "argocd", name, "-o",
                                           "json", check=False)
        if done.returncode == 0:
            status = json.loads(done.stdout).get("status") or {}
            if (status.get("sync") or {}).get("revision") == head and \
                    status["sync"].get("status") == "Synced" and \
                    (status.get("health") or {}).get("status") == "Healthy":
                return status
        time.sleep(1)
    raise AssertionError(f"Application {name} not Synced/Healthy at {head[:12]} after "
                         f"{seconds} s: {status.get('sync')}, {status.get('health')}")
