"""Environment names and the names derived from them: DNS-1123 checks with their length
budget, the random, hard-to-guess host that stays with an environment for its life, and the
check of custom hosts bound to an environment (``envforge env bind-domain``)."""

from __future__ import annotations

import secrets

from envforge.core.names import MAX_LABEL, RESERVED_NAMES, is_dns_label
from envforge.errors import DomainError, EnvironmentNameError

#: Length of the random host suffix: 10 base-36 characters, about 51 bits.
HOST_SUFFIX_LENGTH = 10
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
#: Longest suffix appended to the name for derived objects: "-vcluster" (vcluster release,
#: its Argo CD Application) and "-<random>" in the host label.
_LONGEST_SUFFIX = max(len("-vcluster"), 1 + HOST_SUFFIX_LENGTH)
MAX_NAME = MAX_LABEL - _LONGEST_SUFFIX


def check_environment_name(name: str, reserved: frozenset[str] = frozenset()) -> str:
    """``name`` if it is a DNS-1123 label that leaves room for every derived name and is no
    system namespace (``reserved`` adds the platform's own, e.g. Argo CD's)."""
    if not is_dns_label(name):
        raise EnvironmentNameError(
            f"environment name {name!r} is not a DNS-1123 label: use lower-case letters, "
            "digits and '-', starting and ending with a letter or digit (e.g. pr-42)"
        )
    if not name[0].isalpha():
        raise EnvironmentNameError(
            f"environment name {name!r} must start with a letter (it names a namespace and "
            "an Argo CD Application)"
        )
    if name in RESERVED_NAMES or name in reserved or name.startswith("kube-"):
        raise EnvironmentNameError(
            f"environment name {name!r} is reserved: it names a system namespace that "
            "destroying the environment would delete; pick another name"
        )
    if len(name) > MAX_NAME:
        raise EnvironmentNameError(
            f"environment name {name!r} is {len(name)} characters; at most {MAX_NAME} leave "
            f"room for the derived names (host '<name>-<{HOST_SUFFIX_LENGTH} random>', "
            "'<name>-vcluster') within Kubernetes' 63"
        )
    return name


def random_host_suffix() -> str:
    """A hard-to-guess label part from the operating system's CSPRNG."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(HOST_SUFFIX_LENGTH))


def environment_host(name: str, wildcard_domain: str, suffix: str | None = None) -> str:
    """``<name>-<random>.<wildcard-domain>``: one wildcard DNS record serves them all."""
    label = f"{check_environment_name(name)}-{suffix or random_host_suffix()}"
    domain = wildcard_domain.strip(".").lower()
    host = f"{label}.{domain}"
    if not all(is_dns_label(part) for part in domain.split(".")) or len(host) > 253:
        raise EnvironmentNameError(
            f"wildcard domain {wildcard_domain!r} is not a valid DNS name: fix "
            "ENVFORGE_WILDCARD_DOMAIN"
        )
    return host


def environment_namespace(name: str) -> str:
    """The namespace an environment's objects live in: the environment's own name."""
    return check_environment_name(name)


def check_custom_host(host: str) -> str:
    """``host`` lower-cased without a trailing dot, if it is a DNS name of at least two
    labels whose last one (the top-level domain) starts with a letter; no wildcards, no IPs."""
    normal = (host or "").strip().rstrip(".").lower()
    labels = normal.split(".")
    if (len(labels) < 2 or len(normal) > 253
            or not all(is_dns_label(part) for part in labels)
            or not labels[-1][0].isalpha()):
        raise DomainError(
            f"custom host {host!r} is not a DNS name: give a fully qualified host such as "
            "shop.example.com (labels of lower-case letters, digits and '-', at most 63 "
            "characters each, no wildcard, no IP address)")
    return normal
