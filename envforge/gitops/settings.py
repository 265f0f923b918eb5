"""The GitOps area's settings (platform-wide, not per template): a view of
:class:`envforge.settings.EnvforgeSettings` (section ``gitops``; variables ENVFORGE_WILDCARD_DOMAIN,
ENVFORGE_TLS_SECRET, ENVFORGE_MAX_TTL, ENVFORGE_ARGOCD_NAMESPACE, ... described in
docs/settings.md), plus the values that have no variable (vcluster chart, quota).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from envforge.gitops.ttl import parse_ttl
from envforge.settings import EnvforgeSettings, load_settings


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


def gitops_settings(settings: EnvforgeSettings) -> GitOpsSettings:
    """The GitOps area's view of ``settings`` (the TTL limit parsed to seconds)."""
    section = settings.gitops
    return GitOpsSettings(
        wildcard_domain=section.wildcard_domain,
        tls_secret=section.tls_secret,
        custom_domain_tls_secret_template=section.custom_domain_tls_secret_template,
        ingress_class=section.ingress_class,
        ingress_namespace=section.ingress_namespace,
        default_ttl=section.default_ttl,
        max_ttl_seconds=parse_ttl(section.max_ttl, "ENVFORGE_MAX_TTL"),
        kubernetes_version=section.kubernetes_version,
        argocd_namespace=section.argocd_namespace,
        argocd_project=section.argocd_project,
        credentials_block=section.credentials_block,
    )


def load_gitops_settings() -> GitOpsSettings:
    """The view of the process's settings (for callers that have none handed to them)."""
    return gitops_settings(load_settings())
