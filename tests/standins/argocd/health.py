"""Argo CD's built-in health checks, from its documentation
(https://argo-cd.readthedocs.io/en/release-3.3/operator-manual/health/): Deployment, ReplicaSet,
StatefulSet, DaemonSet, Pod, Service, Ingress, PersistentVolumeClaim and Job; an
application's health is the worst of its resources'."""

from __future__ import annotations

from typing import Any

#: Health from best to worst; an application's health is the worst of its resources'.
HEALTH_ORDER = ["Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown"]
#: Container waiting reasons Argo CD's pod check reports as Degraded.
FAILING_WAIT_REASONS = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull",
                        "CreateContainerConfigError", "InvalidImageName",
                        "CreateContainerError", "RunContainerError"}

def resource_health(obj: dict[str, Any]) -> dict[str, str] | None:
    """Argo CD's health of one live object, or None for kinds without a health check."""
    kind, status = obj.get("kind"), obj.get("status") or {}
    spec = obj.get("spec") or {}
    generation = (obj.get("metadata") or {}).get("generation", 0)
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        if kind == "Deployment" and spec.get("paused"):
            return {"status": "Suspended", "message": "Deployment is paused"}
        if status.get("observedGeneration", 0) < generation:
            return {"status": "Progressing",
                    "message": "Waiting for rollout to finish: observed generation less than "
                               "desired generation"}
        for condition in status.get("conditions") or []:
            if condition.get("reason") == "ProgressDeadlineExceeded":
                return {"status": "Degraded", "message":
                        f"{kind} {obj['metadata']['name']!r} exceeded its progress deadline"}
            if kind == "ReplicaSet" and condition.get("type") == "ReplicaFailure" and \
                    condition.get("status") == "True":
                return {"status": "Degraded", "message": condition.get("message", "")}
        if kind == "DaemonSet":
            wanted, updated = status.get("desiredNumberScheduled", 0), \
                status.get("updatedNumberScheduled", 0)
            available = status.get("numberAvailable", 0)
        else:
            wanted = spec.get("replicas", 1)
            updated = status.get("updatedReplicas", 0 if kind != "ReplicaSet" else
                                 status.get("replicas", 0))
            available = status.get("availableReplicas", 0) if kind != "StatefulSet" else \
                status.get("readyReplicas", 0)
        if updated < wanted:
            return {"status": "Progressing", "message":
                    f"Waiting for rollout to finish: {updated} out of {wanted} new replicas "
                    "have been updated..."}
        if kind == "Deployment" and status.get("replicas", 0) > updated:
            return {"status": "Progressing", "message":
                    f"Waiting for rollout to finish: {status.get('replicas', 0) - updated} "
                    "old replicas are pending termination..."}
        if available < updated:
            return {"status": "Progressing", "message":
                    f"Waiting for rollout to finish: {available} of {updated} updated "
                    "replicas are available..."}
        return {"status": "Healthy", "message": ""}
    if kind == "Pod":
        return pod_health(obj)
    if kind == "Service":
        if spec.get("type") == "LoadBalancer" and \
                not (status.get("loadBalancer") or {}).get("ingress"):
            return {"status": "Progressing", "message": ""}
        return {"status": "Healthy", "message": ""}
    if kind == "Ingress":
        ingress = (status.get("loadBalancer") or {}).get("ingress")
        return {"status": "Healthy" if ingress else "Progressing", "message": ""}
    if kind == "PersistentVolumeClaim":
        phase = status.get("phase")
        return {"status": {"Bound": "Healthy", "Lost": "Degraded"}.get(phase, "Progressing"),
                "message": ""}
    if kind == "Job":
        if spec.get("suspend"):
            return {"status": "Suspended", "message": "Job is suspended"}
        for condition in status.get("conditions") or []:
            if condition.get("status") == "True" and condition.get("type") == "Complete":
                return {"status": "Healthy", "message": condition.get("message", "")}
            if condition.get("status") == "True" and condition.get("type") == "Failed":
                return {"status": "Degraded", "message": condition.get("message", "")}
        return {"status": "Progressing", "message": "Job is running"}
    return None


def pod_health(pod: dict[str, Any]) -> dict[str, str]:
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FAILING_WAIT_REASONS:
            return {"status": "Degraded", "message": waiting.get("message", waiting["reason"])}
    phase = status.get("phase")
    if phase == "Succeeded":
        return {"status": "Healthy", "message": status.get("message", "")}
    if phase == "Failed":
        return {"status": "Degraded", "message": status.get("message", "")}
    if phase == "Running" and (pod.get("spec") or {}).get("restartPolicy", "Always") == "Always":
        ready = all(c.get("ready") for c in status.get("containerStatuses") or [{}])
        return {"status": "Healthy" if ready else "Progressing", "message": ""}
    return {"status": "Progressing", "message": status.get("message", "")}


def worst(statuses: list[str]) -> str:
    return max(statuses, key=HEALTH_ORDER.index, default="Healthy")


