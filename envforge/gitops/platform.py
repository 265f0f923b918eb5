"""The platform's own objects around an environment's app: an explicit Namespace, quota,
limits, default-deny networking that admits the ingress controller, an RBAC role for the owner
group, and the Ingress on the environment's random host with TLS by secret reference.

Argo CD's ``CreateNamespace=true`` leaves namespaces behind when an Application is deleted, so
the Namespace is a manifest of its own that Argo CD prunes with everything else.
"""

from __future__ import annotations

from typing import Any

from envforge.core.names import to_label_value
from envforge.gitops.record import EnvironmentRecord
from envforge.gitops.settings import GitOpsSettings

Manifest = dict[str, Any]


def label_value(text: str) -> str:
    """``text`` squeezed into a Kubernetes label value (63 characters, alphanumeric ends)."""
    return to_label_value(text) or "none"


def environment_labels(record: EnvironmentRecord) -> dict[str, str]:
    """Labels on every platform object: which environment, whose, and when it expires."""
    return {
        "app.kubernetes.io/managed-by": "envforge",
        "envforge.dev/environment": record.name,
        "envforge.dev/template": label_value(record.spec.template),
        "envforge.dev/type": record.spec.type,
        "envforge.dev/owner": label_value(record.spec.owner),
        "envforge.dev/expires-at": record.status.expiresAt.strftime("%Y%m%dT%H%M%SZ"),
    }


def _meta(name: str, record: EnvironmentRecord, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": environment_labels(record)}
    if namespaced:
        meta["namespace"] = record.status.namespace
    return meta


def namespace(record: EnvironmentRecord) -> Manifest:
    meta = _meta(record.status.namespace, record, namespaced=False)
    meta["annotations"] = {"envforge.dev/owner": record.spec.owner,
                           "envforge.dev/expires-at": record.status.expiresAt.isoformat()}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def resource_quota(record: EnvironmentRecord, settings: GitOpsSettings) -> Manifest:
    return {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": _meta("envforge-quota", record),
            "spec": {"hard": dict(settings.quota)}}


def limit_range(record: EnvironmentRecord) -> Manifest:
    return {"apiVersion": "v1", "kind": "LimitRange",
            "metadata": _meta("envforge-limits", record),
            "spec": {"limits": [{
                "type": "Container",
                "default": {"cpu": "500m", "memory": "256Mi"},
                "defaultRequest": {"cpu": "50m", "memory": "64Mi"},
                "max": {"cpu": "2", "memory": "2Gi"},
            }]}}


def network_policies(record: EnvironmentRecord, settings: GitOpsSettings) -> list[Manifest]:
    """Deny all ingress, then admit pods of this namespace and the ingress controller's."""
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta("envforge-default-deny", record),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    admit = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": _meta("envforge-allow-ingress-controller", record),
             "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [
                 {"namespaceSelector": {"matchLabels": {
                     "kubernetes.io/metadata.name": settings.ingress_namespace}}},
                 {"podSelector": {}},
             ]}]}}
    return [deny, admit]


def owner_rbac(record: EnvironmentRecord) -> list[Manifest]:
    """A namespaced Role for the owner group (everyday objects, no RBAC or quota changes)."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": _meta("envforge-owner", record),
            "rules": [
                {"apiGroups": ["", "apps", "batch", "networking.k8s.io", "autoscaling"],
                 "resources": ["pods", "pods/log", "pods/exec", "pods/portforward", "services",
                               "configmaps", "deployments", "replicasets", "statefulsets",
                               "jobs", "cronjobs", "ingresses", "horizontalpodautoscalers",
                               "events", "persistentvolumeclaims"],
                 "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
            ]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": _meta("envforge-owner", record),
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                           "name": "envforge-owner"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                             "name": owner_group(record.spec.owner)}]}
    return [role, binding]


def owner_group(owner: str) -> str:
    """``group:platform`` (a Backstage entity ref) -> ``platform``; other owners as given."""
    kind, sep, name = owner.partition(":")
    return name if sep and kind.lower() == "group" else owner


def point_ingress_at_host(ingress: Manifest, record: EnvironmentRecord,
                          settings: GitOpsSettings) -> Manifest:
    """The template's Ingress, moved to the environment's host with the wildcard TLS secret."""
    spec = ingress.setdefault("spec", {})
    rules = spec.get("rules") or [{}]
    for rule in rules:
        rule["host"] = record.status.host
    spec["rules"] = rules
    spec["tls"] = [{"hosts": [record.status.host], "secretName": settings.tls_secret}]
    spec.setdefault("ingressClassName", settings.ingress_class)
    return ingress


def ingress_for_service(service: Manifest, record: EnvironmentRecord,
                        settings: GitOpsSettings) -> Manifest:
    """An Ingress for a template that ships a Service but none of its own."""
    ports = (service.get("spec") or {}).get("ports") or [{}]
    port = ports[0]
    backend_port = {"name": port["name"]} if port.get("name") else {
        "number": int(port.get("port", 80))}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": _meta("envforge-ingress", record),
            "spec": {
                "ingressClassName": settings.ingress_class,
                "tls": [{"hosts": [record.status.host], "secretName": settings.tls_secret}],
                "rules": [{"host": record.status.host, "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": service["metadata"]["name"],
                                            "port": backend_port}}}]}}]}}


def platform_manifests(record: EnvironmentRecord,
                       settings: GitOpsSettings) -> dict[str, list[Manifest]]:
    """File name (under manifests/) -> objects, for the isolation every environment gets."""
    return {
        "envforge-namespace.yaml": [namespace(record)],
        "envforge-quota.yaml": [resource_quota(record, settings), limit_range(record)],
        "envforge-network-policy.yaml": network_policies(record, settings),
        "envforge-rbac.yaml": owner_rbac(record),
    }
