"""Settings of the GitOps area, from the environment (platform-wide, not per template).

ENVFORGE_WILDCARD_DOMAIN      hosts are <name>-<random>.<domain> (default preview.example.test)
ENVFORGE_TLS_SECRET           Secret holding the wildcard certificate (default wildcard-tls)
ENVFORGE_CUSTOM_DOMAIN_TLS_SECRET_TEMPLATE
                              Secret name of a custom host's certificate; {label} is the host
                              with '.' as '-', {environment} the name (default tls-{label})
ENVFORGE_INGRESS_CLASS        ingressClassName of generated Ingresses (default nginx)
ENVFORGE_INGRESS_NAMESPACE    namespace of the ingress controller the NetworkPolicy admits
ENVFORGE_DEFAULT_TTL          TTL when none is given (default 48h)
ENVFORGE_MAX_TTL              longest TTL allowed at create or extend (default 14d)
ENVFORGE_KUBERNETES_VERSION   Kubernetes version manifests are validated against (default 1.31)
ENVFORGE_ARGOCD_NAMESPACE     namespace Argo CD Applications live in (default argocd)
ENVFORGE_ARGOCD_PROJECT       Argo CD project of environment Applications (default default)
ENVFORGE_GITOPS_BLOCK         name of a GitCredentials block for the GitOps remote (optional)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from envforge.gitops.ttl import parse_ttl


@dataclass(frozen=True)
class GitOpsSettings:
    wildcard_domain: str = "preview.example.test"
    tls_secret: str = "wildcard-tls"
    custom_domain_tls_secret_template: str = "tls-{label}"
    ingress_class: str = "nginx"
    ingress_namespace: str = "ingress-nginx"
    default_ttl: str = "48h"
    max_ttl_seconds: int = 14 * 86400
    kubernetes_version: str = "1.31"
    argocd_namespace: str = "argocd"
    argocd_project: str = "default"
    credentials_block: str | None = None
    vcluster_chart_version: str = "0.20.0"
    quota: dict[str, str] = field(default_factory=lambda: {
        "requests.cpu": "2", "requests.memory": "4Gi", "limits.cpu": "4",
        "limits.memory": "8Gi", "pods": "30", "services": "10",
        "persistentvolumeclaims": "5"})


def load_gitops_settings() -> GitOpsSettings:
    """The settings from ENVFORGE_* variables, defaults where unset."""
    env = os.environ
    defaults = GitOpsSettings()
    max_ttl = env.get("ENVFORGE_MAX_TTL")
    return GitOpsSettings(
        wildcard_domain=env.get("ENVFORGE_WILDCARD_DOMAIN") or defaults.wildcard_domain,
        tls_secret=env.get("ENVFORGE_TLS_SECRET") or defaults.tls_secret,
        custom_domain_tls_secret_template=(env.get("ENVFORGE_CUSTOM_DOMAIN_TLS_SECRET_TEMPLATE")
                                           or defaults.custom_domain_tls_secret_template),
        ingress_class=env.get("ENVFORGE_INGRESS_CLASS") or defaults.ingress_class,
        ingress_namespace=env.get("ENVFORGE_INGRESS_NAMESPACE") or defaults.ingress_namespace,
        default_ttl=env.get("ENVFORGE_DEFAULT_TTL") or defaults.default_ttl,
        max_ttl_seconds=(parse_ttl(max_ttl, "ENVFORGE_MAX_TTL") if max_ttl
                         else defaults.max_ttl_seconds),
        kubernetes_version=env.get("ENVFORGE_KUBERNETES_VERSION") or defaults.kubernetes_version,
        argocd_namespace=env.get("ENVFORGE_ARGOCD_NAMESPACE") or defaults.argocd_namespace,
        argocd_project=env.get("ENVFORGE_ARGOCD_PROJECT") or defaults.argocd_project,
        credentials_block=env.get("ENVFORGE_GITOPS_BLOCK") or None,
    )
