"""What the Argo CD stand-in knows of resources: tracking ids, Argo CD's kind order, the
entries of ``status.resources`` and ``syncResult``, and the field comparison of a diff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NAMESPACE = "argocd"
FIELD_MANAGER = "argocd-controller"
TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
FINALIZER = "resources-finalizer.argocd.argoproj.io"
FINALIZER_BACKGROUND = "resources-finalizer.argocd.argoproj.io/background"
IN_CLUSTER = ("https://kubernetes.default.svc", "in-cluster")
#: Argo CD applies in this kind order within a wave (the order Helm installs in); unknown
#: kinds (custom resources, Applications) last.
KIND_ORDER = ["Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
              "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap",
              "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
              "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
              "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding",
              "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController",
              "ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job",
              "CronJob", "IngressClass", "Ingress", "APIService"]
IGNORED_FOR_DIFF = {"resourceVersion", "managedFields", "generation", "uid",
                     "creationTimestamp"}

def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, order=True)
class Key:
    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Key:
        group = obj["apiVersion"].rpartition("/")[0] if "/" in obj["apiVersion"] else ""
        meta = obj.get("metadata") or {}
        return cls(group, obj["kind"], meta.get("namespace") or "", meta["name"])

    def tracking_id(self, app: str) -> str:
        return f"{app}:{self.group}/{self.kind}:{self.namespace}/{self.name}"

    def describe(self) -> str:
        kind = self.kind.lower() + (f".{self.group}" if self.group else "")
        return f"{kind}/{self.name}"

    def order(self) -> tuple[int, str, str]:
        rank = KIND_ORDER.index(self.kind) if self.kind in KIND_ORDER else len(KIND_ORDER)
        return rank, self.namespace, self.name


def resource_entry(key: Key, version: str, sync_result: bool = False) -> dict[str, Any]:
    """A resource as status lists it (a syncResult entry names a namespace, empty or not)."""
    entry = {"group": key.group, "version": version, "kind": key.kind, "name": key.name}
    if key.namespace or sync_result:
        entry["namespace"] = key.namespace
    return entry



def contains_fields(live: Any, desired: Any) -> bool:
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            k in live and contains_fields(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(live) == len(desired) and all(
            contains_fields(a, b) for a, b in zip(live, desired, strict=True))
    return bool(live == desired)

