"""The Kubernetes side of ``db:role``: the Secret ``<name>-db-login`` holding the login.

envforge.db sits beside envforge.secrets in the layers (neither imports the other), so this
step writes its one Secret through the Kubernetes API itself, labelled the way
envforge.secrets.delivery labels every Secret it delivers: destroy's ``remove_environment`` and
a killed create's clean-up delete Secrets by those labels, this one included. The password is
scrubbed from every error this module raises.
"""

from __future__ import annotations

import base64
from typing import Any

from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from envforge.core.kubernetes_boundary import kubernetes_errors
from envforge.errors import DatabaseError

LABEL_ENVIRONMENT = "envforge.dev/environment"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"


class LoginSecretWriter:
    """Creates, replaces and deletes the login Secret; ``hidden`` never appears in an error."""

    def __init__(self, api_client: Any, timeout: float, hidden: tuple[str, ...] = ()) -> None:
        self.core: Any = k8s_client.CoreV1Api(api_client)
        self.timeout = timeout
        self.hidden = hidden

    def _scrub(self, text: str) -> str:
        for value in self.hidden:
            text = text.replace(value, "***")
        return text

    def ensure_namespace(self, namespace: str, environment: str) -> bool:
        """Create the environment's namespace if missing; True when this call created it."""
        with kubernetes_errors(f"create namespace {namespace}", scrub=self._scrub):
            try:
                self.core.create_namespace(
                    {"metadata": {"name": namespace, "labels": labels(environment)}},
                    _request_timeout=self.timeout)
                return True
            except ApiException as e:
                if e.status == 409:  # there already (another step's, or an earlier run's)
                    return False
                raise

    def apply(self, namespace: str, name: str, environment: str, data: dict[str, str]) -> bool:
        """Create the Secret, or replace the one envforge made for this environment; True when
        created. A Secret of that name that is not this environment's is left alone."""
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": labels(environment)},
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


def labels(environment: str) -> dict[str, str]:
    """The labels destroy and the clean-up find an environment's Secrets by."""
    return {LABEL_ENVIRONMENT: environment, LABEL_MANAGED_BY: "envforge"}
