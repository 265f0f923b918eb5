"""Server-side validation before commit: every rendered object is applied to the configured
cluster with server-side apply and ``dryRun=All``, so what only the API server knows (admission
webhooks and policies, quotas and limit ranges, CRD schemas, immutable fields of what already
runs there) refuses a manifest before it reaches Git, not after Argo CD tried to sync it.

Nothing is persisted. An object whose namespace does not exist yet (a new environment) is
dry-run in ``fallback_namespace`` instead: schema, defaults and admission still apply, only that
namespace's quota is not the environment's. A namespace that is still terminating (the previous
environment of the same name is being pruned) is an error of its own: temporary, retry later.

It runs after the offline validation (envforge.gitops.validate), which cannot import this
layer: :func:`server_dry_run_check` makes the check, the composition root puts it in the
services' ``manifest_checks`` (envforge.composition), and publishing hands those to the
validation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from envforge.cluster.client import ClusterReader, cluster_errors, open_cluster
from envforge.connections import ConnectionSource
from envforge.core.kubernetes_boundary import NotFound
from envforge.errors import ClusterApiError, NamespaceTerminatingError
from envforge.services import ManifestCheck
from envforge.settings import ClusterSection, load_settings

log = logging.getLogger("envforge.cluster.dry_run")
FIELD_MANAGER = "envforge"
#: Set to 0 to skip the server-side dry run even with a cluster configured.


def dry_run_objects(reader: ClusterReader, objects: Iterable[tuple[str, dict[str, Any]]],
                    fallback_namespace: str = "default") -> list[str]:
    """Problems the API server finds, one per refused object: '<file>: <Kind ns/name>: the
    API server refused it: <reason>'. Raises NamespaceTerminatingError, or ClusterError
    when the server cannot be asked."""
    objects = list(objects)
    with cluster_errors("discover the API server's resources", reader.description):
        dynamic: Any = DynamicClient(reader.api_client)  # type: ignore[no-untyped-call]
    states: dict[str, str] = {}
    problems: list[str] = []
    for file, doc in objects:
        kind, api_version = str(doc.get("kind", "")), str(doc.get("apiVersion", ""))
        meta = doc.get("metadata") or {}
        name = str(meta.get("name", "?"))
        try:
            resource = dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            problems.append(f"{file}: {kind} {name}: the API server does not serve {kind} in "
                            f"{api_version} (is its CRD installed? check apiVersion and kind)")
            continue
        namespace = str(meta.get("namespace") or "") if resource.namespaced else ""
        body = doc
        if namespace:
            state = states.get(namespace) or _namespace_state(reader, namespace)
            states[namespace] = state
            if state == "Terminating":
                raise NamespaceTerminatingError(
                    f"namespace {namespace} is still terminating (the environment of that name "
                    "was destroyed and Kubernetes is still emptying it); wait until it is gone "
                    f"('kubectl get namespace {namespace}') and create it again")
            if state == "Missing":  # a new environment's namespace (or a typo: Argo CD says)
                body = {**doc, "metadata": {**meta, "namespace": fallback_namespace}}
                namespace = fallback_namespace
        given = str(meta.get("namespace") or "")
        where = f"{kind} {given + '/' if given else ''}{name}"
        try:
            with cluster_errors(f"dry-run apply {where}", reader.description):
                dynamic.server_side_apply(resource, body=body, name=name,
                                          namespace=namespace or None,
                                          field_manager=FIELD_MANAGER, force_conflicts=True,
                                          dry_run="All", _request_timeout=reader.timeout)
        except ClusterApiError as e:
            if isinstance(e, NamespaceTerminatingError) or e.__class__ is not ClusterApiError:
                raise  # terminating, or busy (temporary): not the manifest's fault
            problems.append(f"{file}: {where}: the API server refused it: "
                            f"{_reason(str(e))}")
        except NotFound as e:
            problems.append(f"{file}: {where}: the API server refused it: {_reason(str(e))}")
    return problems


def _reason(message: str) -> str:
    """The server's words from a mapped error ('... refused to X (where): 422 ...: reason')."""
    _, _, reason = message.partition("): ")
    return reason or message


def _namespace_state(reader: ClusterReader, namespace: str) -> str:
    """Active, Terminating or Missing."""
    try:
        with cluster_errors(f"read namespace {namespace}", reader.description):
            answer = reader.core.read_namespace(namespace, _request_timeout=reader.timeout)
    except NotFound:
        return "Missing"
    return str(getattr(answer.status, "phase", None) or "Active")


def cluster_configured(settings: ClusterSection | None = None) -> bool:
    """A cluster to ask: KUBECONFIG set, or running in a pod; and not switched off
    (ENVFORGE_SERVER_DRY_RUN)."""
    settings = settings or load_settings().cluster
    return settings.server_dry_run and settings.configured


def server_dry_run_check(connections: ConnectionSource, settings: ClusterSection
                         ) -> ManifestCheck:
    """The check publishing runs after the offline validation: a server-side dry run of the
    manifests in the cluster of ``connections`` (KUBECONFIG / in-cluster), when one is
    configured and ENVFORGE_SERVER_DRY_RUN is not off; handed down in the services."""

    def server_check(objects: list[tuple[str, dict[str, Any]]]) -> list[str]:
        if not cluster_configured(settings):
            return []
        with open_cluster(connections) as reader:
            problems = dry_run_objects(reader, objects)
        log.info("server-side dry run (%s): %d object(s), %d refused", reader.description,
                 len(objects), len(problems))
        return problems

    return server_check
