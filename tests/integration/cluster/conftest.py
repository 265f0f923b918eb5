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


@dataclass
class Workload:
    """A running pod of component ``web`` whose log is ``line 0`` … ``line 49``."""

    namespace: str
    pod: str


LOG_LINES = "".join(f"line {i}\n" for i in range(50))


@pytest.fixture
def web_workload(cluster: ClusterUnderTest, env_name: str) -> Iterator[Workload]:
    """On the stand-in: seeded. On a real cluster: a namespace with a Deployment ``web``
    (busybox, or ENVFORGE_TEST_SHELL_IMAGE) printing the lines, waited for (at most 180 s),
    and deleted afterwards."""
    if cluster.standin is not None:
        from tests.standins.cluster_objects import seed_environment

        seed_environment(cluster.standin, env_name, log=LOG_LINES)
        yield Workload(env_name, "web-7d9f8-abcde")
        return
    from kubernetes import client as k8s_client

    from blocks.kubernetes import KubernetesCluster

    image = os.environ.get("ENVFORGE_TEST_SHELL_IMAGE", "busybox:1.36")
    labels = {"app.kubernetes.io/name": "web"}
    with KubernetesCluster.from_environment().get_client() as api:
        core, apps = k8s_client.CoreV1Api(api), k8s_client.AppsV1Api(api)
        core.create_namespace({"metadata": {"name": env_name}})
        try:
            apps.create_namespaced_deployment(env_name, {
                "metadata": {"name": "web"},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                             "name": "app", "image": image, "command": [
                                 "sh", "-c",
                                 "for i in $(seq 0 49); do echo line $i; done; sleep 3600"]}]}}}})
            yield Workload(env_name, _wait_for_running_pod(core, env_name))
        finally:
            core.delete_namespace(env_name)


def _wait_for_running_pod(core: Any, namespace: str) -> str:
    import time

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for pod in core.list_namespaced_pod(namespace).items:
            statuses = pod.status.container_statuses or []
            if pod.status.phase == "Running" and statuses and all(s.ready for s in statuses):
                time.sleep(1)  # let it print its lines
                return str(pod.metadata.name)
        time.sleep(2)
    pytest.fail(f"no pod of Deployment web became ready in namespace {namespace} in 180 s")
