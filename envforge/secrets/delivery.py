"""Delivering secret variables as a Kubernetes Secret through the API (never through Git).

The Secret is created, or replaced in one PUT carrying the resourceVersion read just before
(optimistic concurrency: a concurrent writer makes it retry, never half-apply), labelled with
the environment so destroy can find and remove it. A Secret of the same name that envforge
does not manage for this environment is never overwritten. Kubernetes errors are mapped by
envforge.core.kubernetes_boundary; messages are scrubbed of every registered value.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from envforge.actions.ownership import (
    LABEL_ENVIRONMENT,
    LABEL_MANAGED_BY,
    ensure_environment_namespace,
    environment_labels,
)
from envforge.core.kubernetes_boundary import ErrorKinds
from envforge.core.kubernetes_boundary import kubernetes_errors as cluster_kubernetes_errors
from envforge.errors import ClusterUnreachableError, SecretDeliveryError
from envforge.secrets.redaction import SecretRedactor, default_redactor

log = logging.getLogger("envforge.secrets.delivery")
MANAGER = "envforge"
CONFLICT_RETRIES = 5
#: Refusals are SecretDeliveryError; no answer or a busy server, ClusterUnreachableError
#: (temporary, and a SecretDeliveryError too).
DELIVERY_ERRORS = ErrorKinds(refused=SecretDeliveryError, denied=SecretDeliveryError,
                             missing=SecretDeliveryError, unreachable=ClusterUnreachableError,
                             busy=ClusterUnreachableError)


@dataclass
class SecretDelivery:
    """What one delivery did, so it can be undone. ``previous_data`` (the replaced Secret's
    data) stays in memory and is never part of a step output."""

    namespace: str
    name: str
    keys: list[str]
    created: bool
    namespace_created: bool = False
    resource_version: str = ""
    previous_data: dict[str, str] | None = field(default=None, repr=False)


@contextmanager
def kubernetes_errors(doing: str, redactor: SecretRedactor | None = None) -> Iterator[None]:
    """Errors mapped by envforge.core.kubernetes_boundary (the one place), in this module's family:
    SecretDeliveryError when refused, ClusterUnreachableError (temporary) when no answer."""
    with cluster_kubernetes_errors(doing, scrub=(redactor or default_redactor()).scrub,
                                   kinds=DELIVERY_ERRORS):
        yield


class SecretDeliverer:
    """Creates, replaces and removes the Secrets of environments in one cluster."""

    def __init__(self, api_client: k8s_client.ApiClient, redactor: SecretRedactor | None = None,
                 timeout_seconds: float = 15.0) -> None:
        # Any: the generated models type every field Optional; we pass plain dicts and check
        # what we read where it matters.
        self.core: Any = k8s_client.CoreV1Api(api_client)
        self.redactor = redactor or default_redactor()
        self.timeout = timeout_seconds

    def ensure_namespace(self, namespace: str, environment: str, run_id: str = "",
                         claimed: bool = False) -> bool:
        """Create the namespace if missing (labelled, annotated with the run that made it);
        True when this call created it. ``claimed``: the run's caller named its environment
        (run-template's ``environment`` parameter), so the run may use only a namespace it made
        itself, never one that was there before it (another environment's)."""
        created = ensure_environment_namespace(
            self.core, namespace, environment, run_id, claimed, SecretDeliveryError,
            self.timeout, lambda doing: kubernetes_errors(doing, self.redactor))
        if created:
            log.info("created namespace %s for environment %s", namespace, environment)
        return created

    def apply_secret(self, namespace: str, name: str, environment: str,
                     values: Mapping[str, str], annotations: Mapping[str, str] | None = None
                     ) -> SecretDelivery:
        """Create the Secret, or replace the one envforge made for this environment."""
        self.redactor.register_all(values.values())
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": environment_labels(environment),
                         "annotations": dict(annotations or {})},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        }
        where = f"Secret {namespace}/{name}"
        with kubernetes_errors(f"create {where}", self.redactor):
            try:
                made = self.core.create_namespaced_secret(namespace, body,
                                                          _request_timeout=self.timeout)
                log.info("created %s with %d key(s)", where, len(values))
                return SecretDelivery(namespace, name, sorted(values), True,
                                      resource_version=made.metadata.resource_version or "")
            except ApiException as e:
                if e.status != 409:
                    raise
        for _attempt in range(CONFLICT_RETRIES):
            with kubernetes_errors(f"replace {where}", self.redactor):
                current = self.core.read_namespaced_secret(name, namespace,
                                                           _request_timeout=self.timeout)
                owner = (current.metadata.labels or {}).get(LABEL_ENVIRONMENT)
                if owner != environment:
                    raise SecretDeliveryError(
                        f"{where} exists and is not managed by envforge for environment "
                        f"{environment!r} (label {LABEL_ENVIRONMENT}={owner!r}); choose another "
                        "secretName or remove that Secret"
                    )
                body["metadata"]["resourceVersion"] = current.metadata.resource_version
                try:
                    made = self.core.replace_namespaced_secret(name, namespace, body,
                                                               _request_timeout=self.timeout)
                except ApiException as e:
                    if e.status == 409:
                        continue  # someone wrote in between: read again, replace again
                    raise
            log.info("replaced %s with %d key(s)", where, len(values))
            return SecretDelivery(namespace, name, sorted(values), False,
                                  resource_version=made.metadata.resource_version or "",
                                  previous_data=dict(current.data or {}))
        raise SecretDeliveryError(f"{where} kept changing under envforge ({CONFLICT_RETRIES} "
                                  "conflicting writes); try again")

    def undo(self, delivery: SecretDelivery) -> str:
        """Take a delivery back: delete what was created, restore what was replaced."""
        where = f"Secret {delivery.namespace}/{delivery.name}"
        if delivery.created or delivery.previous_data is None:
            self.delete_secret(delivery.namespace, delivery.name)
            outcome = f"deleted {where}"
        else:
            with kubernetes_errors(f"restore {where}", self.redactor):
                current = self.core.read_namespaced_secret(delivery.name, delivery.namespace,
                                                           _request_timeout=self.timeout)
                current.data = delivery.previous_data
                self.core.replace_namespaced_secret(delivery.name, delivery.namespace, current,
                                                    _request_timeout=self.timeout)
            outcome = f"restored the previous {where}"
        if delivery.namespace_created:
            self.delete_namespace(delivery.namespace)
            outcome += f" and deleted namespace {delivery.namespace}"
        return outcome

    def delete_secret(self, namespace: str, name: str) -> bool:
        with kubernetes_errors(f"delete Secret {namespace}/{name}", self.redactor):
            try:
                self.core.delete_namespaced_secret(name, namespace, _request_timeout=self.timeout)
            except ApiException as e:
                if e.status == 404:
                    return False
                raise
        log.info("deleted Secret %s/%s", namespace, name)
        return True

    def delete_namespace(self, namespace: str) -> None:
        with kubernetes_errors(f"delete namespace {namespace}", self.redactor):
            try:
                self.core.delete_namespace(namespace, _request_timeout=self.timeout)
            except ApiException as e:
                if e.status != 404:
                    raise

    def remove_environment(self, namespace: str, environment: str) -> list[str]:
        """On destroy: delete every Secret labelled with the environment; returns their names."""
        selector = f"{LABEL_ENVIRONMENT}={environment},{LABEL_MANAGED_BY}={MANAGER}"
        with kubernetes_errors(f"list Secrets of {environment} in {namespace}", self.redactor):
            found = self.core.list_namespaced_secret(namespace, label_selector=selector,
                                                     _request_timeout=self.timeout)
        removed = []
        for item in found.items:
            if self.delete_secret(namespace, item.metadata.name):
                removed.append(item.metadata.name)
        return removed
