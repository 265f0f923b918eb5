"""The Kubernetes API for the cluster-feedback tests: a real cluster when KUBECONFIG is set,
otherwise the local stand-in, started once per session. Tests that must play Argo CD (set an
Application's status) or inject faults need the stand-in and skip on a real cluster; the run's
summary says which was used."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.standins.kubernetes import KubernetesStandin, start_kubernetes_standin

USED: dict[str, str] = {}


@dataclass
class ClusterUnderTest:
    kubeconfig: Path
    standin: KubernetesStandin | None


@pytest.fixture(scope="session")
def cluster_under_test(tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[ClusterUnderTest]:
    existing = os.environ.get("KUBECONFIG")
    if existing:
        USED["Kubernetes"] = f"real cluster from KUBECONFIG={existing}"
        yield ClusterUnderTest(Path(existing.split(os.pathsep)[0]), None)
        return
    standin = start_kubernetes_standin()
    kubeconfig = standin.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")
    USED["Kubernetes"] = f"stand-in at {standin.url} (set KUBECONFIG for a real cluster)"
    try:
        yield ClusterUnderTest(kubeconfig, standin)
    finally:
        standin.stop()


@pytest.fixture
def cluster(cluster_under_test: ClusterUnderTest,
            monkeypatch: pytest.MonkeyPatch) -> ClusterUnderTest:
    """The cluster, with KUBECONFIG pointing at it (what envforge falls back to)."""
    monkeypatch.setenv("KUBECONFIG", str(cluster_under_test.kubeconfig))
    return cluster_under_test


@pytest.fixture
def standin(cluster: ClusterUnderTest) -> KubernetesStandin:
    if cluster.standin is None:
        pytest.skip("plays Argo CD (sets Application status) or injects faults: needs the "
                    "Kubernetes stand-in, but KUBECONFIG points at a real cluster")
    return cluster.standin


@pytest.fixture
def env_name() -> str:
    return f"cf-{uuid.uuid4().hex[:8]}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for service, how in sorted(USED.items()):
        terminalreporter.write_line(f"cluster integration tests: {service} = {how}")
