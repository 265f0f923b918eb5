"""Asking Argo CD to look at Git now, after a commit, instead of at its next poll.

Argo CD re-reads Git on its own every ``timeout.reconciliation`` (180 s by default, plus
jitter), and an app-of-apps adds one more such interval before a new environment's Application
even exists. The documented way to cut that short without its API server is the
``argocd.argoproj.io/refresh`` annotation on an Application: the controller compares it with
the branch head at once (re-resolving the branch, no cached revision) and removes the
annotation. This is what Argo CD's own Git webhook does too: it refreshes every Application
whose source is the pushed repository. envforge does the same after each push, for the
Applications reading the GitOps repository (the root app-of-apps and the environments').

Only the Applications whose source path the commit may have changed are refreshed (the root
app-of-apps reads ``argocd/``, an environment's Application ``environments/<name>/...``), as
Argo CD's webhook does for Applications annotated with ``manifest-generate-paths``: with N
environments, refreshing every Application after every commit made N refreshes per commit
(N^2 for N pull requests at once), each a manifest generation in Argo CD's repo server and a
comparison in its controller, for nothing. A push whose paths are not known (an undo) still
refreshes every Application reading the repository.

Best effort: the commit stands whatever happens here; a failed refresh is logged and Argo CD
picks the change up at its next poll.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from envforge.errors import ConfigurationError

if TYPE_CHECKING:
    from envforge.connections import KubernetesConnection

#: Opens the connection to the cluster Argo CD runs on (the services' default cluster).
ClusterOpener = Callable[[], "KubernetesConnection"]

logger = logging.getLogger("envforge.gitops.refresh")

REFRESH_ANNOTATION = "argocd.argoproj.io/refresh"
ARGOCD_GROUP, ARGOCD_VERSION, APPLICATIONS = "argoproj.io", "v1alpha1", "applications"
#: each call to the API server during a refresh gives up after this many seconds
REQUEST_TIMEOUT_SECONDS = 5.0


def same_repository(a: str, b: str) -> bool:
    """Whether two repository URLs name the same repository, as Argo CD's webhook compares
    them: case-insensitive, without a trailing ``/`` or ``.git``."""
    def norm(url: str) -> str:
        url = url.strip().rstrip("/").lower()
        return url.removesuffix(".git")
    return bool(a) and norm(a) == norm(b)


def application_sources(app: dict[str, Any]) -> list[dict[str, Any]]:
    spec = app.get("spec") or {}
    sources = list(spec.get("sources") or [])
    if spec.get("source"):
        sources.append(spec["source"])
    return [s for s in sources if isinstance(s, dict)]


def _repository_path(path: object) -> str:
    """A path inside the repository without ``./`` or surrounding slashes (``""``: all of it)."""
    text = str(path or "").strip().strip("/")
    while text.startswith("./"):
        text = text[2:]
    return "" if text == "." else text


def paths_overlap(source_path: object, changed: str) -> bool:
    """Whether a change under ``changed`` may alter what a source reading ``source_path``
    renders: one contains the other (the repository root contains everything)."""
    a, b = _repository_path(source_path), _repository_path(changed)
    return not a or not b or a == b or a.startswith(b + "/") or b.startswith(a + "/")


def applications_reading(apps: Iterable[dict[str, Any]], repo_url: str,
                         paths: Sequence[str] | None = None) -> list[str]:
    """Names of the Applications with a source in ``repo_url`` (sorted); with ``paths``, only
    those whose source path overlaps one of them."""
    return sorted(str(a["metadata"]["name"]) for a in apps
                  if any(same_repository(str(s.get("repoURL", "")), repo_url)
                         and (paths is None
                              or any(paths_overlap(s.get("path"), p) for p in paths))
                         for s in application_sources(a)))


def annotate_refresh(custom: Any, namespace: str, names: Iterable[str]) -> list[str]:
    """Put ``argocd.argoproj.io/refresh: normal`` on each named Application (a merge patch of
    its metadata only); returns those that were annotated (a missing one is skipped)."""
    from kubernetes.client.exceptions import ApiException

    done = []
    for name in names:
        try:
            custom.patch_namespaced_custom_object(
                ARGOCD_GROUP, ARGOCD_VERSION, namespace, APPLICATIONS, name,
                {"metadata": {"annotations": {REFRESH_ANNOTATION: "normal"}}},
                _request_timeout=REQUEST_TIMEOUT_SECONDS)
            done.append(name)
        except ApiException as e:
            if e.status != 404:
                raise
    return done


def refresh_repository_applications(custom: Any, namespace: str, repo_url: str,
                                    paths: Sequence[str] | None = None) -> list[str]:
    """Refresh every Application in ``namespace`` that reads ``repo_url`` (with ``paths``:
    under one of them)."""
    listed = custom.list_namespaced_custom_object(
        ARGOCD_GROUP, ARGOCD_VERSION, namespace, APPLICATIONS,
        _request_timeout=REQUEST_TIMEOUT_SECONDS)
    return annotate_refresh(custom, namespace,
                            applications_reading(listed.get("items") or [], repo_url, paths))


def refresh_after_push(repo_url: str, namespace: str, cluster: ClusterOpener | None
                       ) -> Callable[[str, Sequence[str] | None], None]:
    """A hook for :class:`~envforge.gitops.store.EnvironmentStore`: after each pushed commit,
    refresh the Applications reading ``repo_url`` (under the paths it changed, when known) on
    the cluster ``cluster`` opens (the
    services' default cluster: KUBECONFIG, in-cluster configuration or ~/.kube/config, see
    ``connections.kubernetes_cluster(None)``). Without one (None, or it raises
    ConfigurationError: none configured) it does nothing; a cluster named by a
    KubernetesCluster block is refreshed by the wait (envforge.cluster.wait) instead."""
    def hook(commit: str, paths: Sequence[str] | None = None) -> None:
        if cluster is None:
            return  # no services, no cluster: Argo CD polls by itself
        try:
            from kubernetes import client

            try:
                api = cluster().api_client
            except ConfigurationError:
                return  # no cluster configured here: Argo CD polls by itself
            try:
                names = refresh_repository_applications(client.CustomObjectsApi(api),
                                                        namespace, repo_url, paths)
            finally:
                api.close()
            logger.debug("asked Argo CD to refresh %s after %s", ", ".join(names) or "nothing",
                         commit[:12])
        except Exception as e:  # the commit stands: Argo CD's own poll will see it
            logger.warning("could not ask Argo CD to refresh after commit %s (%s: %s); it "
                           "will notice at its next poll", commit[:12], type(e).__name__,
                           str(e).splitlines()[0][:200] if str(e) else "")
    return hook
