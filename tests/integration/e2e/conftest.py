"""Everything at once, for the end-to-end tests: PostgreSQL, the registry and buildah, the Vault
and Kubernetes stand-ins (or the real ones from VAULT_ADDR/VAULT_TOKEN and KUBECONFIG), a
GitOps remote, and an application repository whose Dockerfile builds on the local base image.
The services are the other areas' session fixtures, shared rather than started twice."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from envforge.config import PROJECT_ROOT
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
from tests.integration.lifecycle.conftest import gitops
from tests.integration.secrets.conftest import (
    ClusterTarget,
    VaultTarget,
    cluster_target,
    vault_service,
)

__all__ = ["base_image", "buildah_storage", "builder", "cluster_target", "gitops",
           "make_repo", "pg_server", "registry", "vault_service"]

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
          cluster_target: ClusterTarget, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> World:
    app = make_repo({"Dockerfile": f"FROM {base_image}\nCOPY index.html /www/index.html\n",
                     "index.html": "<p>shop</p>\n"}, name="shop")
    monkeypatch.setenv("ENVFORGE_BUILDAH_ROOT", str(buildah_storage))
    monkeypatch.setenv("PGHOST", pg_server.host)
    monkeypatch.setenv("PGPORT", str(pg_server.port))
    monkeypatch.setenv("PGUSER", pg_server.user)
    monkeypatch.setenv("VAULT_ADDR", vault_service.address)
    monkeypatch.setenv("VAULT_TOKEN", vault_service.root_token)
    monkeypatch.setenv("KUBECONFIG", str(cluster_target.kubeconfig))
    vault_service.put_secret("preview-app/api", {"key": API_KEY})
    # a private copy of the templates, so a test may add a failing step to preview-app
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates" / "preview-app", templates / "preview-app")
    monkeypatch.setenv("ENVFORGE_TEMPLATES_PATH", str(templates))
    return World(gitops, app, registry, pg_server, vault_service, cluster_target, templates)
