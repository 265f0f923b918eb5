"""The cluster-feedback tests run against the real control plane (``kube_control_plane``: the
pinned kube-apiserver, controller manager and scheduler) and its real node (the default when
the tests run as root, as `make test` and CI do: a kubelet, containerd and runc,
scripts/services/node.sh). ``seed_environment`` deploys a busybox image from the session's
registry that the node really runs: it logs ``line 0`` .. ``line 49``, and when unhealthy it
really exits and crash-loops, the kubelet writing the BackOff events.

Where a test needs Argo CD's part (an Application with a status), it writes it as Argo CD's
application controller does: the Application CRD has no status subresource, so the status is
part of an ordinary merge patch of the object.

Without root (``ENVFORGE_NODE=kwok``) kwok plays the kubelet: pods Running without containers,
CrashLoopBackOff from the ``envforge.dev/simulate`` annotation (scripts/services/
kubelet-stages.yaml), every container's log the file DIR/container.log (the same 50 lines),
and the BackOff event written here as the kubelet would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client

from blocks.kubernetes import KubernetesCluster
from tests.integration.cluster.real_node import (  # noqa: F401  (fixtures of the real node)
    app_image,
    node_database,
    node_images,
    node_namespace,
    real_cluster,
)
from tests.kube import ControlPlane

COMPONENT_LABEL = "app.kubernetes.io/name"
#: What every ``web`` container logs (kwok: DIR/container.log holds the same lines).
LOG_LINES = [f"line {i}" for i in range(50)]
PRINT_LOG_LINES = "for i in $(seq 0 49); do echo line $i; done"


@dataclass
class ClusterUnderTest:
    plane: ControlPlane
    #: On a real node, a busybox image its pods really run (None with kwok).
    image: str | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    @property
    def container_log(self) -> Path | None:
        """The file kwok serves as every container's log (DIR/container.log), when known."""
        path = self.plane.kubeconfig.parent / "container.log"
        return path if path.is_file() else None

    def api(self) -> k8s_client.ApiClient:
        return KubernetesCluster(kubeconfig_path=str(self.kubeconfig)).get_client()

    def app_logs(self, namespace: str, pod: str, line: str) -> None:
        """The application in ``pod`` writes ``line`` to its standard output: on a real node
        through PID 1's stdout, which the runtime captures (kwok: appended to its log file)."""
        if self.image is None:
            assert self.container_log is not None
            with self.container_log.open("a") as f:
                f.write(f"2026-01-01T00:00:01.000000000Z stdout F {line}\n")
            return
        self.plane.kubectl("-n", namespace, "exec", pod, "-c", "app", "--", "sh", "-c",
                           f"echo '{line}' > /proc/1/fd/1")


@pytest.fixture(scope="session")
def cluster_under_test(kube_control_plane: ControlPlane,
                       request: pytest.FixtureRequest) -> ClusterUnderTest:
    if kube_control_plane.node_kind == "real":
        return ClusterUnderTest(kube_control_plane,
                                request.getfixturevalue("node_images").image)
    return ClusterUnderTest(kube_control_plane)


@pytest.fixture
def cluster(cluster_under_test: ClusterUnderTest,
            monkeypatch: pytest.MonkeyPatch) -> ClusterUnderTest:
    """The cluster, with KUBECONFIG pointing at it (what envforge falls back to)."""
    monkeypatch.setenv("KUBECONFIG", str(cluster_under_test.kubeconfig))
    return cluster_under_test


@pytest.fixture
def env_name(cluster_under_test: ClusterUnderTest) -> Iterator[str]:
    """A fresh environment name; its namespace and Application are deleted afterwards
    (without waiting: the namespace controller empties it in the background)."""
    name = f"cf-{uuid.uuid4().hex[:8]}"
    yield name
    for suffix in ("", "-b", "-ok"):
        cluster_under_test.plane.kubectl("delete", "namespace", name + suffix,
                                         "--wait=false", "--ignore-not-found", check=False)
        cluster_under_test.plane.kubectl("-n", "argocd", "delete", "applications.argoproj.io",
                                         name + suffix, "--wait=false", "--ignore-not-found",
                                         check=False)


def application_status(sync: str = "Synced", health: str = "Healthy",
                       revision: str = "0123456789abcdef", phase: str = "Succeeded",
                       message: str = "successfully synced (all tasks run)") -> dict[str, Any]:
    """An Application's status with Argo CD's field names and values."""
    return {"sync": {"status": sync, "revision": revision},
            "health": {"status": health},
            "operationState": {"phase": phase, "message": message,
                               "operation": {"sync": {"revision": revision},
                                             "initiatedBy": {"automated": True}},
                               "startedAt": "2026-11-24T02:00:00Z",
                               "syncResult": {"revision": revision}}}


def write_application_status(api: k8s_client.ApiClient, name: str,
                             status: dict[str, Any]) -> None:
    """What Argo CD's controller does: a merge patch of the object itself (the CRD has no
    /status subresource, so a /status patch would be refused with 404)."""
    k8s_client.CustomObjectsApi(api).patch_namespaced_custom_object(
        "argoproj.io", "v1alpha1", "argocd", "applications", name, {"status": status})


def seed_environment(cluster: ClusterUnderTest, name: str, *, healthy: bool = True,
                     host: str | None = None, status: dict[str, Any] | None = None,
                     wait: bool = True, image: str | None = None) -> str:
    """An environment as Argo CD leaves it on the real server: namespace, Application (with
    status), Deployment ``web`` (1 replica, its pod Running/Ready, or CrashLoopBackOff with the
    kubelet's BackOff event), optional Ingress. Returns the pod's name ("" without wait).
    ``image`` replaces the session's image on a real node (e.g. a tag that does not exist)."""
    labels = {COMPONENT_LABEL: "web"}
    annotations = {} if healthy else {"envforge.dev/simulate": "CrashLoopBackOff"}
    container: dict[str, Any] = {"name": "app", "image": "app:1"}
    if cluster.image:  # a real node: the container runs, and really crashes when unhealthy
        annotations = {}
        container = {"name": "app", "image": image or cluster.image, "command": [
            "sh", "-c", f"{PRINT_LOG_LINES}; exec sleep 3600" if healthy
            else f"{PRINT_LOG_LINES}; exit 1"]}
        if not healthy:  # never Ready, not even in the instant between a restart and its exit
            container["readinessProbe"] = {"exec": {"command": ["false"]}}
    with cluster.api() as api:
        core, apps = k8s_client.CoreV1Api(api), k8s_client.AppsV1Api(api)
        core.create_namespace({"metadata": {"name": name}})
        k8s_client.CustomObjectsApi(api).create_namespaced_custom_object(
            "argoproj.io", "v1alpha1", "argocd", "applications", {
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                # the session's real Argo CD (tests/argocd.py) leaves it alone: its status is
                # written by the test (Argo CD's documented skip-reconcile annotation)
                "metadata": {"name": name, "namespace": "argocd",
                             "annotations": {"argocd.argoproj.io/skip-reconcile": "true"}},
                "spec": {"project": "default",
                         "source": {"repoURL": "file:///gitops.git", "path": f"envs/{name}",
                                    "targetRevision": "main"},
                         "destination": {"server": "https://kubernetes.default.svc",
                                         "namespace": name}}})
        write_application_status(api, name, status or (
            application_status() if healthy else application_status(health="Degraded")))
        apps.create_namespaced_deployment(name, {
            "metadata": {"name": "web", "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels, "annotations": annotations},
                                  "spec": {"containers": [container],
                                           "terminationGracePeriodSeconds": 1}}}})
        if host:
            k8s_client.NetworkingV1Api(api).create_namespaced_ingress(name, {
                "metadata": {"name": "web"},
                "spec": {"tls": [{"hosts": [host], "secretName": "wildcard-tls"}],
                         "rules": [{"host": host, "http": {"paths": [{
                             "path": "/", "pathType": "Prefix", "backend": {"service": {
                                 "name": "web", "port": {"number": 80}}}}]}}]}})
        if not wait:
            return ""
        pod = wait_for_pod(core, name, healthy)
        if not healthy and not cluster.image:  # kwok writes no events; a kubelet does
            core.create_namespaced_event(name, {
                "metadata": {"name": f"{pod}.backoff"},
                "involvedObject": {"kind": "Pod", "name": pod, "namespace": name,
                                   "apiVersion": "v1"},
                "reason": "BackOff", "message": "Back-off restarting failed container app",
                "type": "Warning", "count": 12, "source": {"component": "kubelet"},
                "firstTimestamp": "2026-11-24T01:59:00Z",
                "lastTimestamp": "2026-11-24T02:00:00Z"})
        if not healthy and cluster.image:
            wait_for_backoff_event(core, name, pod)
        if healthy:
            wait_for_available(apps, name)
        return pod


def wait_for_backoff_event(core: Any, namespace: str, pod: str, seconds: float = 60) -> None:
    """The kubelet's BackOff event for the crash-looping ``pod`` (written beside the status)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        events = core.list_namespaced_event(namespace,
                                            field_selector=f"involvedObject.name={pod}").items
        if any(e.reason == "BackOff" for e in events):
            return
        time.sleep(0.3)
    pytest.fail(f"the kubelet wrote no BackOff event for {namespace}/{pod} in {seconds:.0f} s")


def wait_for_pod(core: Any, namespace: str, ready: bool, seconds: float = 60) -> str:
    """The Deployment's pod once it is Running/Ready (or crash-looping)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for pod in core.list_namespaced_pod(namespace).items:
            statuses = pod.status.container_statuses or []
            if ready and statuses and all(s.ready for s in statuses):
                return str(pod.metadata.name)
            waiting = [s.state.waiting.reason for s in statuses if s.state and s.state.waiting]
            if not ready and "CrashLoopBackOff" in waiting:
                return str(pod.metadata.name)
        time.sleep(0.3)
    pytest.fail(f"no pod in namespace {namespace} became "
                f"{'ready' if ready else 'CrashLoopBackOff'} in {seconds:.0f} s")


def wait_for_available(apps: Any, namespace: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = apps.read_namespaced_deployment("web", namespace).status
        if (status.available_replicas or 0) >= 1 and (status.updated_replicas or 0) >= 1:
            return
        time.sleep(0.3)
    pytest.fail(f"Deployment {namespace}/web did not become available in {seconds:.0f} s")


@dataclass
class Workload:
    """A running pod of component ``web``; its log is ``line 0`` … ``line 49``
    (LOG_LINES)."""

    namespace: str
    pod: str


@pytest.fixture
def web_workload(cluster: ClusterUnderTest, env_name: str) -> Workload:
    if cluster.image is None and cluster.container_log is None:
        pytest.skip("kwok's container log (DIR/container.log beside the kubeconfig of a "
                    "control plane from scripts/services/kubernetes.sh) is not here")
    return Workload(env_name, seed_environment(cluster, env_name))
