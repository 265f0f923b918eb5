"""Benchmark: the cost of one status snapshot of an environment (Argo CD Application,
Deployments, pods, Ingress) read as plain JSON (what envforge.cluster does) against the same
reads deserialised into the kubernetes client's generated models and turned back into dicts,
side by side (alternating) in one run; plus the diagnosis of 3 crash-looping pods.

    .venv/bin/python bench/cluster.py --pods 200 --reps 15 [--write-docs]

Against the in-process Kubernetes stand-in (tests/standins), so the figures measure the
client side and the stand-in's HTTP, not a real API server's latency.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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
from tests.standins.cluster_objects import (  # noqa: E402
    add_with_status,
    deployment,
    event,
    pod,
    seed_environment,
)
from tests.standins.kubernetes import start_kubernetes_standin  # noqa: E402

NAME = "bench-env"


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


def main() -> None:
    """Seed the stand-in, measure snapshot and diagnosis, print, optionally write docs."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    standin = start_kubernetes_standin()
    try:
        seed_environment(standin, NAME, host="bench.example.test")
        for i in range(9):
            add_with_status(standin, deployment(f"svc{i}", NAME, replicas=args.pods // 10))
        for i in range(args.pods - 1):
            crashing = i < 3
            add_with_status(standin, pod(f"svc{i % 9}-{i:05d}", NAME, f"svc{i % 9}",
                                          ready=not crashing,
                                          waiting="CrashLoopBackOff" if crashing else None,
                                          restarts=3 if crashing else 0))
            if crashing:
                standin.set_pod_log(NAME, f"svc{i % 9}-{i:05d}",
                                    "".join(f"log line {n}\n" for n in range(500)))
                for n in range(20):
                    standin.add(event(f"ev{i}-{n}", NAME, f"svc{i % 9}-{i:05d}", "BackOff",
                                      f"Back-off restarting failed container ({n})"))
        with tempfile.TemporaryDirectory() as tmp:
            config = standin.write_kubeconfig(Path(tmp) / "config")
            reader = ClusterReader(KubernetesCluster(kubeconfig_path=str(config)).get_client())
            before = len(standin.requests)
            health = read_environment_health(reader, NAME, NAME)
            requests = len(standin.requests) - before
            assert len(health.pods) == args.pods, len(health.pods)
            assert via_models(reader).problems() == health.problems()
            raw, models, diag = [], [], []
            for _ in range(args.reps):  # alternate, so drift hits both alike
                raw.append(seconds(lambda: read_environment_health(reader, NAME, NAME)))
                models.append(seconds(lambda: via_models(reader)))
                diag.append(seconds(lambda: diagnose(reader, health)))
            reader.close()
    finally:
        standin.stop()
    raw_ms, models_ms = median(raw) * 1000, median(models) * 1000
    diag_ms = median(diag) * 1000
    polls = polls_in(600, 2, 10)
    lines = [
        f"Command: `.venv/bin/python bench/cluster.py --pods {args.pods} --reps {args.reps}`",
        "(against the in-process Kubernetes stand-in; medians of alternating runs).",
        "",
        "| measure | median |",
        "|---|---|",
        f"| status snapshot, {args.pods} pods, plain JSON (envforge) | {raw_ms:.1f} ms |",
        f"| same snapshot through the client's models | {models_ms:.1f} ms |",
        f"| ratio models / plain JSON | {models_ms / raw_ms:.1f}x |",
        f"| diagnosis of 3 crash-looping pods (events + 20 log lines each) | {diag_ms:.1f} ms |",
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
