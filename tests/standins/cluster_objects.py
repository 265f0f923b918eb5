"""Objects as a real cluster would hold them for a deployed environment: the Argo CD
Application with its status, a Deployment with its rollout status, pods with container states,
Events and logs. Plain dicts: unit tests feed them to the parsers, integration tests load them
into the Kubernetes stand-in with :func:`seed_environment`.
"""

from __future__ import annotations

from typing import Any

from tests.standins.kubernetes import KubernetesStandin


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


def seed_environment(standin: KubernetesStandin, name: str, *, healthy: bool = True,
                     host: str | None = None, log: str = "listening on :8080\n") -> None:
    """An environment as Argo CD would leave it: healthy, or Degraded with a pod in
    CrashLoopBackOff (with BackOff events and a crash in its log)."""
    _ensure_namespace(standin, "argocd")
    _ensure_namespace(standin, name)
    app = application(name) if healthy else application(
        name, health="Degraded", message="successfully synced (all tasks run)")
    add_with_status(standin, app)
    add_with_status(standin, deployment("web", name, available=1 if healthy else 0))
    web = pod("web-7d9f8-abcde", name, "web") if healthy else pod(
        "web-7d9f8-abcde", name, "web", ready=False, waiting="CrashLoopBackOff", restarts=4,
        message="back-off 1m20s restarting failed container=app")
    add_with_status(standin, web)
    standin.set_pod_log(name, "web-7d9f8-abcde", log)
    if not healthy:
        standin.add(event("web.1", name, "web-7d9f8-abcde", "BackOff",
                          "Back-off restarting failed container app", count=12))
        standin.add(event("web.0", name, "web-7d9f8-abcde", "Pulled",
                          "Container image app:1 already present", kind="Normal",
                          at="2026-11-24T01:59:00Z"))
    if host:
        standin.add(ingress("web", name, host))


def _ensure_namespace(standin: KubernetesStandin, name: str) -> None:
    if standin.get("", "namespaces", "", name) is None:
        standin.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def add_with_status(standin: KubernetesStandin, obj: dict[str, Any]) -> None:
    """Create (a client cannot set status on create), then set status as a controller does."""
    status = obj.pop("status")
    created = standin.add(obj)
    meta = created["metadata"]
    group = obj["apiVersion"].rpartition("/")[0]
    plural = {"Application": "applications", "Deployment": "deployments", "Pod": "pods"}[
        obj["kind"]]
    standin.set_status(group, plural, meta.get("namespace", ""), meta["name"], status)
