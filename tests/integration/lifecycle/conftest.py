"""Fixtures for the lifecycle flows: a GitOps remote with a first commit, and the Kubernetes
stand-in (playing the cluster Argo CD syncs to)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import git
from tests.standins.kubernetes import KubernetesStandin, start_kubernetes_standin


@pytest.fixture
def gitops(bare_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A GitOps remote with a first commit, as a real one has."""
    seed = tmp_path / "seed"
    git("clone", "--quiet", str(bare_repo), str(seed))
    (seed / "README.md").write_text("gitops\n")
    git("add", "README.md", cwd=seed)
    git("commit", "--quiet", "-m", "initial", cwd=seed)
    git("push", "--quiet", "origin", "HEAD:main", cwd=seed)
    monkeypatch.setenv("ENVFORGE_GITOPS_URL", bare_repo.as_uri())
    return bare_repo


@pytest.fixture(scope="session")
def kube_standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubernetesStandin]:
    standin = start_kubernetes_standin()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def kubeconfig(kube_standin: KubernetesStandin, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Path:
    config = kube_standin.write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(config))
    return config
