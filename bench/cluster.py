"""Benchmark: the cost of one status snapshot of an environment (Argo CD Application,
Deployments, pods, Ingress) read as plain JSON (what envforge.cluster does) against the same
reads deserialised into the kubernetes client's generated models and turned back into dicts,
side by side (alternating) in one run; plus the diagnosis of 3 crash-looping pods.

    .venv/bin/python bench/cluster.py --pods 200 --reps 15 [--write-docs]

Against the real API server (tests/kube.py: the one ENVFORGE_TEST_KUBECONFIG names, or one
started by scripts/services/kubernetes.sh for the run): Deployments whose pods kwok runs (three
of them crash-looping), an Application with Argo CD's status, the controllers' real events.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
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


def seed(plane: ControlPlane, pods: int) -> int:
    """An environment of ``pods`` pods in 10 Deployments (one of 3 crash-looping pods), its
    Ingress and its Application as Argo CD reports it; waits until the pods run. Returns the
    number of pods."""
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
        template: dict[str, Any] = {"metadata": {"labels": {"app": f"svc{i}"}},
                                    "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
        if i == 9:
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
        started = [p for p in listed["items"] if (p.get("status") or {}).get("containerStatuses")]
        if len(started) == expected:
            return expected
        time.sleep(2)
    raise SystemExit(f"the {expected} pods did not start within 600 s")


def main() -> None:
    """Seed the real API server, measure snapshot and diagnosis, print, optionally write docs."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    plane = start_control_plane()
    try:
        pods = seed(plane, args.pods)
        reader = ClusterReader(KubernetesCluster(kubeconfig_path=str(plane.kubeconfig))
                               .get_client())
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
        assert via_models(reader).problems() == health.problems()
        raw, models, diag = [], [], []
        for _ in range(args.reps):  # alternate, so drift hits both alike
            raw.append(seconds(lambda: read_environment_health(reader, NAME, NAME)))
            models.append(seconds(lambda: via_models(reader)))
            diag.append(seconds(lambda: diagnose(reader, health)))
        reader.close()
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
        "(against the real API server of scripts/services/kubernetes.sh, kwok running the "
        "pods; medians of alternating runs).",
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
