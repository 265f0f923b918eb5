"""Fixtures for the lifecycle flows: a GitOps remote with a first commit, the session's real
Kubernetes API server (tests/kube.py) and the session's real Argo CD (tests/argocd.py)
syncing the remote into it through an app-of-apps, as a platform team sets Argo CD up."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from envforge.gitops.argocd import root_application
from tests.argocd import NAMESPACE, TRACKING_ANNOTATION, ArgoCD
from tests.helpers import git
from tests.kube import ControlPlane


@pytest.fixture
def gitops(bare_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A GitOps remote with a first commit, as a platform team sets one up: ``argocd/`` holds
    a README so the directory outlives the last environment's Application file (Argo CD
    refuses to compare a Directory app whose path is gone, "app path does not exist", and
    would then prune nothing)."""
    seed = tmp_path / "seed"
    git("clone", "--quiet", str(bare_repo), str(seed))
    (seed / "README.md").write_text("gitops\n")
    (seed / "argocd").mkdir()
    (seed / "argocd" / "README.md").write_text("Argo CD Applications, one per environment\n")
    git("add", "README.md", "argocd/README.md", cwd=seed)
    git("commit", "--quiet", "-m", "initial", cwd=seed)
    git("push", "--quiet", "origin", "HEAD:main", cwd=seed)
    monkeypatch.setenv("ENVFORGE_GITOPS_URL", bare_repo.as_uri())
    return bare_repo


@pytest.fixture
def kubeconfig(kube_control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Path:
    """envforge finds its cluster through KUBECONFIG: the session's real API server."""
    monkeypatch.setenv("KUBECONFIG", str(kube_control_plane.kubeconfig))
    return kube_control_plane.kubeconfig


@pytest.fixture
def argocd(gitops: Path, kubeconfig: Path, argocd_service: ArgoCD,
           kube_control_plane: ControlPlane) -> Iterator[str]:
    """An app-of-apps for this test's GitOps remote (the name is returned), as envforge
    documents it (envforge.gitops.argocd.root_application: prune, allowEmpty). Afterwards its
    Applications are deleted (their finalizer deletes what they deployed) before it is."""
    root = f"root-{uuid.uuid4().hex[:8]}"
    body = root_application(gitops.as_uri(), name=root)
    kube_control_plane.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(body))
    try:
        yield root
    finally:
        delete_applications_of(kube_control_plane, root)


def delete_applications_of(plane: ControlPlane, root: str, seconds: float = 180) -> None:
    """Delete the root app first (it would re-create its children), then its children and
    wait, bounded, for their finalizers to have deleted what they deployed."""
    plane.kubectl("delete", "application", "-n", NAMESPACE, root, "--ignore-not-found",
                  "--wait=false", check=False)
    listed = plane.kubectl("get", "applications", "-n", NAMESPACE, "-o", "json", check=False)
    children = [a["metadata"]["name"] for a in json.loads(listed.stdout or '{"items": []}')
                ["items"] if (a["metadata"].get("annotations") or {})
                .get(TRACKING_ANNOTATION, "").startswith(f"{root}:")]
    if children:
        plane.kubectl("delete", "application", "-n", NAMESPACE, *children,
                      "--ignore-not-found", "--wait=false", check=False)
    deadline = time.monotonic() + seconds
    for name in children:
        left = max(1, int(deadline - time.monotonic()))
        plane.kubectl("wait", "--for=delete", f"application/{name}", "-n", NAMESPACE,
                      f"--timeout={left}s", check=False)
