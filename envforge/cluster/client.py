"""Reads of an environment's cluster state through the kubernetes client.

Reads come back as plain JSON dicts (``_preload_content=False``): the status code reads fields
by name and is unit-tested on dicts, with no generated-model round trip. Every call has a
request timeout; errors are mapped by envforge.core.kubernetes_boundary (the one place).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any

from kubernetes import client as k8s_client

from envforge.connections import ConnectionSource
from envforge.core.kubernetes_boundary import NotFound, kubernetes_errors
from envforge.errors import WorkloadNotFoundError
from envforge.secrets.redaction import scrub

ARGOCD_GROUP = "argoproj.io"
ARGOCD_VERSION = "v1alpha1"


def cluster_errors(doing: str, where: str = "") -> AbstractContextManager[None]:
    """Errors while ``doing`` mapped by envforge.core.kubernetes_boundary, scrubbed of secrets."""
    return kubernetes_errors(doing, where, scrub=scrub)


def _json(response: Any) -> dict[str, Any]:
    data = json.loads(response.data or b"{}")
    return data if isinstance(data, dict) else {}


class ClusterReader:
    """Read-only access to what envforge reports about an environment."""

    def __init__(self, api_client: k8s_client.ApiClient, description: str = "cluster",
                 timeout_seconds: float = 15.0) -> None:
        self.api_client = api_client
        self.description = description
        self.timeout = timeout_seconds
        # Any: the generated API classes are untyped.
        self.core: Any = k8s_client.CoreV1Api(api_client)
        self.apps: Any = k8s_client.AppsV1Api(api_client)
        self.custom: Any = k8s_client.CustomObjectsApi(api_client)
        self.networking: Any = k8s_client.NetworkingV1Api(api_client)

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> ClusterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def application(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Argo CD Application, or None when Argo CD has not created it (yet)."""
        try:
            with cluster_errors(f"read Argo CD Application {namespace}/{name}",
                                self.description):
                return _json(self.custom.get_namespaced_custom_object(
                    ARGOCD_GROUP, ARGOCD_VERSION, namespace, "applications", name,
                    _preload_content=False, _request_timeout=self.timeout))
        except NotFound:
            return None

    def namespace_exists(self, name: str) -> bool:
        """Whether the namespace is still there (terminating counts as there)."""
        try:
            with cluster_errors(f"read namespace {name}", self.description):
                self.core.read_namespace(name, _preload_content=False,
                                         _request_timeout=self.timeout)
            return True
        except NotFound:
            return False

    def _list(self, doing: str, call: Any, namespace: str, **kwargs: Any) -> list[dict[str, Any]]:
        try:
            with cluster_errors(doing, self.description):
                items = _json(call(namespace, _preload_content=False,
                                   _request_timeout=self.timeout, **kwargs)).get("items")
        except NotFound:
            return []
        return [item for item in items or [] if isinstance(item, dict)]

    def deployments(self, namespace: str) -> list[dict[str, Any]]:
        return self._list(f"list Deployments in {namespace}",
                          self.apps.list_namespaced_deployment, namespace)

    def pods(self, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        return self._list(f"list pods in {namespace}", self.core.list_namespaced_pod,
                          namespace, label_selector=label_selector)

    def ingresses(self, namespace: str) -> list[dict[str, Any]]:
        return self._list(f"list Ingresses in {namespace}",
                          self.networking.list_namespaced_ingress, namespace)

    def events_for(self, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
        """Events about one object, oldest first (filtered here too: not every server
        honours the field selector)."""
        events = self._list(f"list events of {kind} {namespace}/{name}",
                            self.core.list_namespaced_event, namespace,
                            field_selector=f"involvedObject.kind={kind},"
                                           f"involvedObject.name={name}")
        mine = [e for e in events if (e.get("involvedObject") or {}).get("name") == name
                and (e.get("involvedObject") or {}).get("kind", kind) == kind]
        return sorted(mine, key=event_time)

    def warning_events(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's Warning events, oldest first (why a ReplicaSet made no pods:
        quota exceeded, admission refused, …)."""
        events = self._list(f"list events in {namespace}", self.core.list_namespaced_event,
                            namespace, field_selector="type=Warning")
        return sorted((e for e in events if e.get("type") == "Warning"), key=event_time)

    def pod_log(self, namespace: str, pod: str, container: str | None, tail_lines: int,
                previous: bool = False) -> str:
        try:
            with cluster_errors(f"read the log of pod {namespace}/{pod}", self.description):
                response = self.core.read_namespaced_pod_log(
                    pod, namespace, container=container, tail_lines=tail_lines or None,
                    previous=previous, _preload_content=False, _request_timeout=self.timeout)
                return str(response.data.decode("utf-8", errors="replace"))
        except NotFound:
            raise WorkloadNotFoundError(
                f"pod {namespace}/{pod} no longer exists; see 'envforge env status'") from None

    def stream_pod_log(self, namespace: str, pod: str, container: str | None,
                       tail_lines: int | None, read_timeout: float) -> Any:
        """The raw streaming response of a followed log (the caller closes it)."""
        try:
            with cluster_errors(f"follow the log of pod {namespace}/{pod}", self.description):
                return self.core.read_namespaced_pod_log(
                    pod, namespace, container=container, tail_lines=tail_lines, follow=True,
                    _preload_content=False, _request_timeout=(self.timeout, read_timeout))
        except NotFound:
            raise WorkloadNotFoundError(
                f"pod {namespace}/{pod} no longer exists; see 'envforge env status'") from None


def event_time(event: dict[str, Any]) -> str:
    """When an event last happened (RFC 3339 strings sort in time order)."""
    return str(event.get("lastTimestamp") or event.get("eventTime")
               or (event.get("metadata") or {}).get("creationTimestamp") or "")


def open_cluster(connections: ConnectionSource, block_name: str | None = None) -> ClusterReader:
    """A reader for the named KubernetesCluster block, or for KUBECONFIG / in-cluster
    (resolved by the ``connections`` the caller was handed: the library never loads blocks)."""
    cluster = connections.kubernetes_cluster(block_name or None)
    return ClusterReader(cluster.api_client, cluster.description,
                         cluster.request_timeout_seconds)
