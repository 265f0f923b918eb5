"""Objects as a real cluster holds them for a deployed environment: the Argo CD Application
with its status, a Deployment with its rollout status, pods with container states, Events.
Plain dicts for the parsers' unit tests (integration tests create the real thing instead)."""

from __future__ import annotations

from typing import Any


def application(name: str, sync: str = "Synced", health: str = "Healthy",
                revision: str = "0123456789abcdef", phase: str = "Succeeded",
                message: str = "successfully synced (all tasks run)",
                namespace: str = "argocd") -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"project": "default", "destination": {"namespace": name}},
        "status": {"sync": {"status": sync, "revision": revision},
                   "health": {"status": health},
                   "operationState": {"phase": phase, "message": message,
                                      "syncResult": {"revision": revision}}},
    }


def deployment(name: str, namespace: str, replicas: int = 1, available: int | None = None,
               updated: int | None = None, generation: int = 1,
               observed: int | None = None) -> dict[str, Any]:
    available = replicas if available is None else available
    updated = replicas if updated is None else updated
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "generation": generation,
                     "labels": {"envforge.dev/environment": namespace}},
        "spec": {"replicas": replicas,
                 "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                 "template": {"metadata": {"labels": {"app.kubernetes.io/name": name}},
                              "spec": {"containers": [{"name": "app", "image": "app:1"}]}}},
        "status": {"observedGeneration": generation if observed is None else observed,
                   "replicas": max(updated, replicas), "updatedReplicas": updated,
                   "readyReplicas": available, "availableReplicas": available},
    }


def pod(name: str, namespace: str, component: str, ready: bool = True,
        waiting: str | None = None, restarts: int = 0, phase: str = "Running",
        message: str = "") -> dict[str, Any]:
    state: dict[str, Any] = ({"waiting": {"reason": waiting, "message": message}} if waiting
                             else {"running": {"startedAt": "2026-11-24T02:00:00Z"}})
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/name": component}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        "status": {"phase": phase,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   "containerStatuses": [{"name": "app", "ready": ready, "restartCount": restarts,
                                          "image": "app:1", "imageID": "", "state": state}]},
    }


def event(name: str, namespace: str, pod_name: str, reason: str, message: str,
          kind: str = "Warning", count: int = 1, at: str = "2026-11-24T02:00:00Z"
          ) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": namespace},
        "reason": reason, "message": message, "type": kind, "count": count,
        "lastTimestamp": at,
    }


def ingress(name: str, namespace: str, host: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"tls": [{"hosts": [host], "secretName": "wildcard-tls"}],
                 "rules": [{"host": host, "http": {"paths": []}}]},
    }
