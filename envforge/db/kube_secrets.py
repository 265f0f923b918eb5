"""The Kubernetes side of the database steps (``db:container``'s password and seed, ``db:role``'s
login): the environment's namespace and one Secret in it.

envforge.db sits beside envforge.secrets in the layers (neither imports the other), so these
steps write their Secrets through the Kubernetes API here, with the labels every Secret
envforge delivers carries (envforge.actions.ownership.environment_labels): destroy's
``remove_environment`` and a killed create's clean-up delete Secrets by those labels, these
included. The namespace is made by the one function both use
(envforge.actions.ownership.ensure_environment_namespace: a claimed run uses only a namespace
it made). The values
given as ``hidden`` are scrubbed from every error this module raises.
"""

from __future__ import annotations

import base64
from typing import Any

from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from envforge.actions.ownership import (
    LABEL_ENVIRONMENT,
    ensure_environment_namespace,
    environment_labels,
)
from envforge.core.kubernetes_boundary import kubernetes_errors
from envforge.errors import DatabaseError


class EnvironmentSecretWriter:
    """The Kubernetes calls of this step; ``hidden`` values are scrubbed from every error."""

    def __init__(self, api_client: Any, timeout: float, hidden: tuple[str, ...]) -> None:
        self.core: Any = k8s_client.CoreV1Api(api_client)
        self.timeout = timeout
        self.hidden = hidden

    def _scrub(self, text: str) -> str:
        for value in self.hidden:
            text = text.replace(value, "***")
        return text

    def ensure_namespace(self, namespace: str, environment: str, run_id: str,
                         claimed: bool) -> bool:
        """Create the namespace (True) or use the one there (False; a claimed run only its own,
        envforge.actions.ownership)."""
        return ensure_environment_namespace(
            self.core, namespace, environment, run_id, claimed, DatabaseError, self.timeout,
            lambda doing: kubernetes_errors(doing, scrub=self._scrub))

    def apply(self, namespace: str, name: str, environment: str, data: dict[str, str]) -> bool:
        """Create the Secret, or replace the one envforge made for this environment; True when
        created. A Secret of that name that is not this environment's is left alone."""
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": environment_labels(environment)},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
        where = f"Secret {namespace}/{name}"
        with kubernetes_errors(f"create {where}", scrub=self._scrub):
            try:
                self.core.create_namespaced_secret(namespace, body,
                                                   _request_timeout=self.timeout)
                return True
            except ApiException as e:
                if e.status != 409:
                    raise
            current = self.core.read_namespaced_secret(name, namespace,
                                                       _request_timeout=self.timeout)
            owner = (current.metadata.labels or {}).get(LABEL_ENVIRONMENT)
            if owner != environment:
                raise DatabaseError(f"{where} exists and is not envforge's for environment "
                                    f"{environment!r} (label {LABEL_ENVIRONMENT}={owner!r}); "
                                    "remove it or choose another name")
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            self.core.replace_namespaced_secret(name, namespace, body,
                                                _request_timeout=self.timeout)
            return False

    def delete_secret(self, namespace: str, name: str) -> None:
        with kubernetes_errors(f"delete Secret {namespace}/{name}", scrub=self._scrub):
            try:
                self.core.delete_namespaced_secret(name, namespace, _request_timeout=self.timeout)
            except ApiException as e:
                if e.status != 404:
                    raise

    def delete_namespace(self, namespace: str) -> None:
        with kubernetes_errors(f"delete namespace {namespace}", scrub=self._scrub):
            try:
                self.core.delete_namespace(namespace, _request_timeout=self.timeout)
            except ApiException as e:
                if e.status != 404:
                    raise
