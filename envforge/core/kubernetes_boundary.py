"""The one place kubernetes client, urllib3, websocket and TLS errors become envforge errors.

Every module that talks to the API server (cluster reads, exec, Secret delivery, server-side
dry runs, image builds) wraps its calls in :func:`kubernetes_errors`. It sits in the bottom
layer beside git_boundary (not in envforge.cluster) because secrets and images, which the
layer contract puts below cluster, use it too. The mapping:

    no answer (connection refused/reset, timeout, DNS, TLS handshake)  -> ClusterConnectionError
                                                                          (temporary: retried)
    401 / 403 by RBAC (also a refused exec websocket handshake)        -> ClusterAccessError
                                                                          (permanent: never retried)
    403 by a quota or admission plugin                                 -> ``refused`` class
    403 NamespaceTerminating, 409 "object is being deleted" (namespace) -> NamespaceTerminatingError
                                                                          (temporary)
    404                                                                -> NotFound (internal;
                                                                          callers decide)
    429 / 500 / 502 / 503 / 504 (server busy or restarting)            -> ClusterBusyError
                                                                          (temporary)
    any other status (400 bad request, 409, 422 invalid, ...)          -> ``refused`` class
                                                                          (ClusterApiError)

A caller with its own error family (Secret delivery, Kaniko builds) passes an
:class:`ErrorKinds` naming its classes for the permanent and temporary cases; the message is the
same. Messages are one line, name what was being done and
the server's reason, and go through the caller's ``scrub`` (envforge.secrets.redaction: the
server never echoes a bearer token, but a refused Secret's body could be quoted back).
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import urllib3
from kubernetes.client.exceptions import ApiException

from envforge.errors import (
    ClusterAccessError,
    ClusterApiError,
    ClusterBusyError,
    ClusterConnectionError,
    EnvforgeError,
    NamespaceTerminatingError,
)

#: Statuses that mean "try again later": rate limited, or the server (re)starting.
BUSY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: websocket-client's refusal of an upgrade, which the kubernetes client flattens into
#: ``ApiException(status=0, reason="Handshake status 403 Forbidden ...")``.
_HANDSHAKE = re.compile(r"Handshake status (\d{3})")
#: Server-side apply of an object that does not fit the schema answers 500 with this (the
#: object's fault: permanent, like a 422).
_BAD_APPLY = "failed to create typed patch object"
_RBAC = re.compile(r"\bcannot [\w*]+ resource\b")


class NotFound(Exception):
    """Internal: the object asked for does not exist (callers decide what that means)."""


@dataclass(frozen=True)
class ErrorKinds:
    """Which class each kind of answer becomes: the cluster family by default; a caller with
    its own family (Secret delivery, Kaniko builds) names its classes once, in one constant."""

    refused: type[EnvforgeError] = ClusterApiError
    denied: type[EnvforgeError] = ClusterAccessError
    unreachable: type[EnvforgeError] = ClusterConnectionError
    busy: type[EnvforgeError] = ClusterBusyError
    missing: type[Exception] = NotFound


#: The cluster family: what envforge.cluster and every caller without a family of its own get.
CLUSTER_ERRORS = ErrorKinds()


@contextmanager
def kubernetes_errors(doing: str, where: str = "", *, scrub: Callable[[str], str],
                      kinds: ErrorKinds = CLUSTER_ERRORS) -> Iterator[None]:
    """Map errors raised while ``doing`` (e.g. "create Secret ns/name") to envforge errors of
    ``kinds``; ``where`` describes the cluster (a block or kubeconfig, never its credentials)."""
    try:
        yield
    except ApiException as e:
        raise map_api_exception(e, doing, where, scrub=scrub, kinds=kinds) from e
    except (urllib3.exceptions.HTTPError, ssl.SSLError, OSError) as e:
        raise kinds.unreachable(_unreachable_message(doing, where, e)) from e


def map_api_exception(e: ApiException, doing: str, where: str = "", *,
                      scrub: Callable[[str], str],
                      kinds: ErrorKinds = CLUSTER_ERRORS) -> Exception:
    """The envforge error (or NotFound) for one ApiException."""
    at = f" ({where})" if where else ""
    status = e.status or 0
    reason = str(e.reason or "")
    handshake = None
    if not status:
        handshake = _HANDSHAKE.search(reason)
        if handshake is None:
            return kinds.unreachable(_unreachable_message(doing, where, e))
        status = int(handshake.group(1))  # the server answered the upgrade with an error
        reason = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}.get(status, reason)
    message = scrub(status_message(e))
    if _namespace_terminating(e, status, message):
        return NamespaceTerminatingError(
            f"could not {doing}{at}: {message}; the namespace is still being deleted (an "
            "environment of that name was destroyed): wait until it is gone and try again")
    if status == 404:
        return kinds.missing(f"Kubernetes API could not {doing}{at}: 404 Not Found: {message}")
    if status == 401 or (status == 403 and (handshake or _rbac_refusal(message))):
        return kinds.denied(
            f"Kubernetes API refused to {doing}{at}: {status} {reason}: {message}; "
            "grant that verb on that resource to the credentials of the cluster block or "
            "KUBECONFIG (RBAC), or use credentials that have it")
    if status in BUSY_STATUSES and not message.startswith(_BAD_APPLY):
        return kinds.busy(f"Kubernetes API could not {doing}{at} now: {status} {reason}: "
                          f"{message}; it is retried")
    return kinds.refused(f"Kubernetes API refused to {doing}{at}: {status} {reason}: {message}")


def _rbac_refusal(message: str) -> bool:
    """403 from authorization ('User "u" cannot get resource "x"'), or without a Status body
    (a refused websocket handshake); a quota or an admission plugin also answers 403, but that
    is the object's fault, not the credentials'."""
    return bool(_RBAC.search(message)) or message in ("", "Forbidden")


def _namespace_terminating(error: ApiException, status: int, message: str) -> bool:
    """403 NamespaceTerminating (creating in it), or 409 on re-creating it meanwhile."""
    if status == 403:
        return "NamespaceTerminating" in str(error.body or "")
    return status == 409 and "object is being deleted" in message and "namespace" in message


def status_message(error: ApiException) -> str:
    """The ``message`` of the Status body the server sent, on one line, or the reason."""
    try:
        body = json.loads(error.body or "{}")
        text = str(body.get("message") or error.reason) if isinstance(body, dict) else ""
    except (ValueError, TypeError):
        text = str(error.body or "")
    text = text or str(error.reason or "")
    return " ".join(text.split())[:500]


def _unreachable_message(doing: str, where: str, e: BaseException) -> str:
    at = f" ({where})" if where else ""
    text = f"{type(e).__name__} {getattr(e, 'reason', '') or e}"
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(e, ssl.SSLError):
        why = ("the TLS handshake failed; check the certificate authority in the kubeconfig or "
               "cluster block")
    else:
        why = (f"the Kubernetes API server did not answer ({type(e).__name__}); check the "
               "cluster block or KUBECONFIG, and that the API server is running")
    return f"could not {doing}{at}: {why}"
