"""DNS names and labels: the one place that says what a Kubernetes name, a host or a label
value may look like.

Every check is a full match (``re.fullmatch``): a ``^...$`` pattern with ``re.match`` accepts
a trailing newline (``$`` matches before it), which once let ``name=nl1\\n`` commit a directory
``services/nl1\\n/``. The predicates return bools; the callers raise their own errors (an
environment name, a custom host and a template name are faulted differently).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

#: Longest DNS-1123 label (a namespace, an Argo CD Application, a Service name).
MAX_LABEL = 63
#: Namespaces an environment must never take over: deleting the environment would delete them.
#: Here, below gitops and secrets, because both check it.
RESERVED_NAMES = frozenset({"default", "argocd", "ingress-nginx", "cert-manager", "envforge",
                            "monitoring", "vault"})
#: Longest DNS-1123 subdomain / host name.
MAX_SUBDOMAIN = 253

_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
#: Kubernetes label values: empty, or alphanumeric at both ends with ``-_.`` inside.
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_NOT_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


def is_dns_label(value: object) -> bool:
    """Whether ``value`` is a DNS-1123 label: a-z, 0-9 and '-', alphanumeric at both ends,
    1 to 63 characters, nothing else (no trailing newline, no upper case)."""
    return (isinstance(value, str) and 0 < len(value) <= MAX_LABEL
            and _LABEL.fullmatch(value) is not None)


def is_dns_subdomain(value: object) -> bool:
    """Whether ``value`` is a DNS-1123 subdomain: dot-separated labels, at most 253 in all."""
    return (isinstance(value, str) and 0 < len(value) <= MAX_SUBDOMAIN
            and _SUBDOMAIN.fullmatch(value) is not None
            and all(len(part) <= MAX_LABEL for part in value.split(".")))


def is_label_value(value: object) -> bool:
    """Whether ``value`` can be a Kubernetes label value (at most 63 characters)."""
    return (isinstance(value, str) and len(value) <= MAX_LABEL
            and _LABEL_VALUE.fullmatch(value) is not None)


def to_label_value(value: str) -> str:
    """``value`` made into a label value: runs of other characters become '-', cut to 63."""
    cleaned = _NOT_LABEL_VALUE.sub("-", value)[:MAX_LABEL]
    return cleaned.strip("-_.")


def _dns_label(value: str) -> str:
    if not is_dns_label(value):
        raise ValueError(f"{value!r} is not a DNS-1123 label: lower-case letters, digits and "
                         "'-', starting and ending with a letter or digit, at most 63 "
                         "characters")
    return value


#: A pydantic field type for DNS-1123 labels (a full match, unlike a ``pattern``).
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
