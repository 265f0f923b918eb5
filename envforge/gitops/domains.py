"""Custom hosts of an environment (``spec.domains``): one extra Ingress per host, routing it
exactly as the environment's main Ingress routes its generated host, and the rules deciding
which hosts may be bound at all.

A custom host is refused when it is the environment's own generated host, when it has the
shape of a generated host (``<name>-<10 random>.<wildcard domain>``: a later environment could
draw it), and when another environment already serves it (its generated host or one of its
custom hosts); the last error names that environment.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable
from typing import Any

from envforge.core.names import is_dns_subdomain
from envforge.errors import ConfigurationError, DomainConflictError, DomainError
from envforge.gitops.naming import HOST_SUFFIX_LENGTH
from envforge.gitops.platform import environment_labels
from envforge.gitops.record import EnvironmentRecord
from envforge.gitops.settings import GitOpsSettings

Manifest = dict[str, Any]
#: The first label of a generated host: ``<environment name>-<random suffix>``.
_GENERATED_LABEL = re.compile(rf"[a-z][-a-z0-9]*-[a-z0-9]{{{HOST_SUFFIX_LENGTH}}}")
#: Longest label kept verbatim; longer ones are cut and end in a hash (names stay < 253).
_MAX_VERBATIM = 200
DOMAIN_FILE_PREFIX = "envforge-domain-"


def domain_label(host: str) -> str:
    """The host as one DNS-safe word (``shop.example.com`` -> ``shop-example-com``)."""
    label = host.replace(".", "-")
    if len(label) > _MAX_VERBATIM:
        label = f"{label[:_MAX_VERBATIM - 9].rstrip('-')}-{_digest(host)}"
    return label


def _digest(host: str) -> str:
    return hashlib.sha256(host.encode()).hexdigest()[:8]


def domain_labels(hosts: Iterable[str]) -> dict[str, str]:
    """host -> label for one environment's hosts; two hosts folding to the same label
    (``a-b.c``, ``a.b-c``) both get a hash suffix so neither file overwrites the other."""
    hosts = list(hosts)
    plain = {host: domain_label(host) for host in hosts}
    taken = [plain[h] for h in hosts]
    return {host: label if taken.count(label) == 1 else f"{label}-{_digest(host)}"
            for host, label in plain.items()}


def tls_secret_name(label: str, environment: str, settings: GitOpsSettings) -> str:
    """The Secret holding the custom host's certificate (referenced, never created here)."""
    template = settings.custom_domain_tls_secret_template
    try:
        name = template.format(label=label, environment=environment)
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigurationError(
            f"ENVFORGE_CUSTOM_DOMAIN_TLS_SECRET_TEMPLATE {template!r} cannot be filled in "
            f"({e}): use only the placeholders {{label}} and {{environment}}") from None
    if not is_dns_subdomain(name):
        raise ConfigurationError(
            f"ENVFORGE_CUSTOM_DOMAIN_TLS_SECRET_TEMPLATE {template!r} gives {name!r}, which is "
            "not a valid Secret name (lower-case DNS subdomain, at most 253 characters)")
    return name


def domain_ingresses(record: EnvironmentRecord, main: Manifest | None,
                     settings: GitOpsSettings) -> dict[str, Manifest]:
    """File name (under manifests/) -> Ingress, one per custom host of ``record``, each a copy
    of ``main``'s routing (rules' paths or default backend, class, annotations) on that host."""
    if not record.spec.domains:
        return {}
    if main is None:
        raise DomainError(
            f"environment {record.name!r} has no Ingress to route its custom hosts "
            f"({', '.join(record.spec.domains)}) through: its template must ship a Service "
            "or an Ingress")
    spec = main.get("spec") or {}
    paths = [copy.deepcopy(rule["http"]) for rule in spec.get("rules") or []
             if isinstance(rule, dict) and rule.get("http")]
    if not paths and spec.get("defaultBackend"):
        paths = [{"paths": [{"path": "/", "pathType": "Prefix",
                             "backend": copy.deepcopy(spec["defaultBackend"])}]}]
    if not paths:
        raise DomainError(
            f"environment {record.name!r}: its Ingress {main['metadata']['name']!r} has no "
            "HTTP paths or default backend to copy for its custom hosts")
    annotations = (main.get("metadata") or {}).get("annotations") or {}
    out: dict[str, Manifest] = {}
    for host, label in domain_labels(record.spec.domains).items():
        meta: dict[str, Any] = {
            "name": f"{DOMAIN_FILE_PREFIX}{label}", "namespace": record.status.namespace,
            "labels": environment_labels(record),
            "annotations": {**copy.deepcopy(annotations), "envforge.dev/domain": host}}
        ingress_spec: dict[str, Any] = {
            "ingressClassName": spec.get("ingressClassName") or settings.ingress_class,
            "tls": [{"hosts": [host],
                     "secretName": tls_secret_name(label, record.name, settings)}],
            "rules": [{"host": host, "http": copy.deepcopy(http)} for http in paths]}
        out[f"{DOMAIN_FILE_PREFIX}{label}.yaml"] = {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": ingress_spec}
    return out


def check_bindable(host: str, record: EnvironmentRecord, others: Iterable[EnvironmentRecord],
                   settings: GitOpsSettings) -> None:
    """Raise unless ``host`` (already normalised) may be bound to ``record``."""
    if host == record.status.host:
        raise DomainError(
            f"{host!r} is environment {record.name!r}'s own generated host and is served "
            "already; bind a host of your own domain instead")
    for other in others:
        if other.name != record.name and host in (other.status.host, *other.spec.domains):
            raise DomainConflictError(host, other.name, record.name)
    wildcard = settings.wildcard_domain.strip(".").lower()
    first, _, rest = host.partition(".")
    if host == wildcard or (rest == wildcard and _GENERATED_LABEL.fullmatch(first)):
        raise DomainError(
            f"{host!r} has the shape of the hosts envforge generates under {wildcard!r} "
            f"('<name>-<{HOST_SUFFIX_LENGTH} random>'); another environment could be given it. "
            f"Pick a host of your own domain or another name under {wildcard!r}")
