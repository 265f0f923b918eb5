"""Benchmark: the cost of one status snapshot of an environment (Argo CD Application,
Deployments, pods, Ingress) read as plain JSON (what envforge.cluster does) against the same
reads deserialised into the kubernetes client's generated models and turned back into dicts,
side by side (alternating) in one run; plus the diagnosis of 3 crash-looping pods.

    .venv/bin/python bench/cluster.py --pods 200 --reps 15 [--write-docs]

Against the real API server (tests/kube.py: the one ENVFORGE_TEST_KUBECONFIG names, or one
started by scripts/services/kubernetes.sh for the run, ``ENVFORGE_NODE=real`` for a real node):
10 Deployments (one of three crash-looping pods), an Ingress, an Application with Argo CD's
status, the controllers' real events. When the cluster's node is real (kubelet, containerd,
runc) the pods really start: busybox httpd, and an image that prints 50 lines and exits 1 for
the crash loop, pushed to a registry of this run's (the pod count is capped to the node's free
pod slots). Only on a kwok node are the pods simulated (the crash loop is kwok's
``envforge.dev/simulate`` stage, its logs kwok's). The output says which.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # bench/secrets.py used to shadow the standard library's secrets

from bench.common import median, seconds, write_docs_section  # noqa: E402
from blocks.kubernetes import KubernetesCluster  # noqa: E402
from envforge.cluster.client import ClusterReader  # noqa: E402
from envforge.cluster.diagnose import diagnose  # noqa: E402
from envforge.cluster.status import (  # noqa: E402
    EnvironmentHealth,
    parse_application,
    parse_deployment,
    parse_pod,
    read_environment_health,
)
from tests.kube import ControlPlane, start_control_plane, stop_control_plane  # noqa: E402

NAME = f"bench-env-{uuid.uuid4().hex[:6]}"
REGISTRY_SCRIPT = ROOT / "scripts" / "services" / "registry.sh"
#: Pod slots left free on a real node (the ingress controller, a rollout's surge, other work).
SPARE_SLOTS = 10


@dataclass(frozen=True)
class PodImages:
    """What the Deployments run, and on which kind of node (``real`` or ``kwok``)."""

    node: str
    web: str
    crash: str

    def describe(self) -> str:
        if self.node == "real":
            return ("a real node (kubelet, containerd, runc) running the pods: busybox httpd, "
                    "the 3 crash-looping ones really exiting 1")
        return "kwok simulating the pods (no containers; the crash loop is its simulate stage)"


#: kwok pulls nothing: any image name does; the crash loop is the simulate annotation.
KWOK_IMAGES = PodImages("kwok", "app:1", "app:1")


@contextmanager
def pod_images(plane: ControlPlane) -> Iterator[PodImages]:
    """KWOK_IMAGES on a kwok node; on a real node the busybox test images (built once into
    the cache by tests/integration/cluster/real_node.py) in a registry of this run's on
    127.0.0.1, stopped afterwards."""
    if plane.node_kind != "real":
        yield KWOK_IMAGES
        return
    from tests.integration.cluster.real_node import cached_test_images, free_port, push_archive

    tmp = Path(tempfile.mkdtemp(prefix="envforge-bench-cluster-"))
    port = subprocess.run(["bash", str(REGISTRY_SCRIPT), "start", str(tmp / "registry"),
                           str(free_port())], check=True, capture_output=True,
                          text=True).stdout.split()[0]
    try:
        archives = cached_test_images()
        images = PodImages("real", f"127.0.0.1:{port}/bench/web:1",
                           f"127.0.0.1:{port}/bench/crash:1")
        push_archive(archives["web"], images.web)
        push_archive(archives["crash"], images.crash)
        yield images
    finally:
        subprocess.run(["bash", str(REGISTRY_SCRIPT), "stop", str(tmp / "registry")],
                       check=False, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def pods_that_fit(plane: ControlPlane, images: PodImages, wanted: int) -> int:
    """``wanted``, or on a real node at most its allocatable pods less those it runs and
    SPARE_SLOTS (the kubelet would leave the rest Pending)."""
    if images.node != "real":
        return wanted
    nodes = json.loads(plane.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    slots = sum(int(n["status"]["allocatable"]["pods"]) for n in nodes)
    running = json.loads(plane.kubectl(
        "get", "pods", "-A", "-o", "json",
        "--field-selector=status.phase!=Succeeded,status.phase!=Failed").stdout)["items"]
    return max(12, min(wanted, slots - len(running) - SPARE_SLOTS))


def via_models(reader: ClusterReader) -> EnvironmentHealth:
    """The same snapshot through the generated models (the client's default)."""
    api: Any = reader.api_client  # the generated client is untyped
    app = reader.custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", "argocd",
                                                     "applications", NAME)
    deployments = [api.sanitize_for_serialization(d) for d in
                   reader.apps.list_namespaced_deployment(NAME).items]
    pods = [api.sanitize_for_serialization(p) for p in
            reader.core.list_namespaced_pod(NAME).items]
    reader.networking.list_namespaced_ingress(NAME)
    rollouts = tuple(parse_deployment(d) for d in deployments)
    return EnvironmentHealth(NAME, NAME, parse_application(NAME, app), rollouts,
                             tuple(parse_pod(p, rollouts) for p in pods))


def seed(plane: ControlPlane, pods: int, images: PodImages) -> int:
    """An environment of ``pods`` pods in 10 Deployments (one of 3 crash-looping pods), its
    Ingress and its Application as Argo CD reports it; waits until the pods run and the crash
    loop shows. Returns the number of pods."""
    per = max(1, (pods - 3) // 9)
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAME}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": NAME, "namespace": NAME},
         "spec": {"rules": [{"host": "bench.example.test", "http": {"paths": [{
             "path": "/", "pathType": "Prefix", "backend": {"service": {
                 "name": NAME, "port": {"number": 80}}}}]}}]}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
         # its status is written here; a real Argo CD on the cluster leaves it alone
         "metadata": {"name": NAME, "namespace": "argocd",
                      "annotations": {"argocd.argoproj.io/skip-reconcile": "true"}},
         "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc",
                                                        "namespace": NAME},
                  "source": {"repoURL": "file:///bench", "path": ".", "targetRevision": "main"}}}]
    for i in range(10):
        image = images.crash if i == 9 else images.web
        template: dict[str, Any] = {"metadata": {"labels": {"app": f"svc{i}"}},
                                    "spec": {"containers": [{"name": "app", "image": image}],
                                             "terminationGracePeriodSeconds": 1}}
        if i == 9 and images.node != "real":
            template["metadata"]["annotations"] = {"envforge.dev/simulate": "CrashLoopBackOff"}
        objects.append({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": f"svc{i}", "namespace": NAME},
                        "spec": {"replicas": 3 if i == 9 else per,
                                 "selector": {"matchLabels": {"app": f"svc{i}"}},
                                 "template": template}})
    for obj in objects:
        plane.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(obj))
    status = {"status": {"sync": {"status": "Synced", "revision": "0" * 40},
                         "health": {"status": "Degraded"},
                         "operationState": {"phase": "Succeeded", "operation": {"sync": {}},
                                            "startedAt": "2026-01-01T00:00:00Z"}}}
    plane.kubectl("patch", "application", "-n", "argocd", NAME, "--type=merge", "-p",
                  json.dumps(status))  # no status subresource on the Application CRD
    expected = 9 * per + 3
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        listed = json.loads(plane.kubectl("get", "pods", "-n", NAME, "-o", "json").stdout)
        statuses = [((p.get("status") or {}).get("containerStatuses") or [{}])[0]
                    for p in listed["items"]]
        ready = sum(1 for s in statuses if s.get("ready"))
        crashed = sum(1 for s in statuses if s.get("restartCount", 0) >= 1)
        if len(statuses) == expected and (ready, crashed) == (expected - 3, 3):
            return expected
        time.sleep(2)
    raise SystemExit(f"the {expected} pods did not start (and 3 of them crash) within 600 s")


def same_problems(reader: ClusterReader, health: EnvironmentHealth) -> EnvironmentHealth:
    """A snapshot whose problems the models' path reads alike (checked before timing). Real
    crash-looping pods change state (running, back-off) between two reads: a few tries."""
    for _ in range(10):
        if via_models(reader).problems() == health.problems():
            return health
        time.sleep(1)
        health = read_environment_health(reader, NAME, NAME)
    raise SystemExit("plain JSON and the client's models disagree on the problems: "
                     f"{health.problems()}")


def measure(plane: ControlPlane, images: PodImages, wanted: int, reps: int
            ) -> tuple[int, int, list[float], list[float], list[float]]:
    """Seed, then time ``reps`` alternating snapshots (plain JSON, models) and diagnoses.
    Returns the pods, the API requests of one snapshot and the three series of seconds."""
    pods = seed(plane, pods_that_fit(plane, images, wanted), images)
    reader = ClusterReader(KubernetesCluster(kubeconfig_path=str(plane.kubeconfig))
                           .get_client())
    try:
        calls: list[str] = []
        rest = reader.api_client.rest_client
        request: Any = rest.request

        def counted(method: str, url: str, *a: Any, **k: Any) -> Any:
            calls.append(url)
            return request(method, url, *a, **k)

        rest.request = counted  # type: ignore[method-assign]
        health = read_environment_health(reader, NAME, NAME)
        requests = len(calls)
        assert len(health.pods) == pods, len(health.pods)
        health = same_problems(reader, health)
        raw: list[float] = []
        models: list[float] = []
        diag: list[float] = []
        for _ in range(reps):  # alternate, so drift hits both alike
            raw.append(seconds(lambda: read_environment_health(reader, NAME, NAME)))
            models.append(seconds(lambda: via_models(reader)))
            diag.append(seconds(lambda: diagnose(reader, health)))
    finally:
        reader.close()
    return pods, requests, raw, models, diag


def main() -> None:
    """Seed the real API server, measure snapshot and diagnosis, print, optionally write docs."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    plane = start_control_plane()
    try:
        with pod_images(plane) as images:
            print(f"node: {images.describe()}", flush=True)
            pods, requests, raw, models, diag = measure(plane, images, args.pods, args.reps)
    finally:
        plane.kubectl("delete", "application", "-n", "argocd", NAME, "--ignore-not-found",
                      check=False)
        plane.kubectl("delete", "namespace", NAME, "--ignore-not-found", "--wait=false",
                      check=False)
        stop_control_plane(plane)
    raw_ms, models_ms = median(raw) * 1000, median(models) * 1000
    diag_ms = median(diag) * 1000
    polls = polls_in(600, 2, 10)
    lines = [
        f"Command: `.venv/bin/python bench/cluster.py --pods {args.pods} --reps {args.reps}`",
        f"(against the real API server of scripts/services/kubernetes.sh, {images.describe()}; "
        "medians of alternating runs).",
        "",
        "| measure | median |",
        "|---|---|",
        f"| status snapshot, {pods} pods, plain JSON (envforge) | {raw_ms:.1f} ms |",
        f"| same snapshot through the client's models | {models_ms:.1f} ms |",
        f"| ratio models / plain JSON | {models_ms / raw_ms:.1f}x |",
        f"| diagnosis of 3 crash-looping pods (events + log lines) | {diag_ms:.1f} ms |",
        f"| API requests per snapshot | {requests} |",
        f"| snapshots in a 600 s wait (poll 2 s, x1.5 up to 10 s) | at most {polls} |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        write_docs_section("cluster", f"## Cluster feedback\n\n{text}")


def polls_in(timeout: float, first: float, most: float) -> int:
    """How many snapshots the wait's schedule takes in ``timeout`` (read, then sleep)."""
    now, interval, polls = 0.0, first, 0
    while True:
        polls += 1
        if now >= timeout:
            return polls
        now += min(interval, timeout - now)
        interval = min(most, interval * 1.5)


if __name__ == "__main__":
    main()
