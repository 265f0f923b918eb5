"""The Argo CD side of an environment: one ``Application`` per environment (and, for a
vcluster, one more for the virtual cluster's Helm chart), plus a pydantic model of exactly the
Argo CD fields envforge writes, used to check them before anything is committed.

Every Application carries the ``resources-finalizer.argocd.argoproj.io`` finalizer, so deleting
it (``env destroy`` removes its file; the app-of-apps prunes it) deletes what it deployed.

The sync policy is chosen so that a rollback is never held back (docs/gitops.md): Argo CD does
not start a new sync while an operation is Running, and a retrying sync stays Running through
its backoff, so retries are few and short; no ``PruneLast`` (it waits for every other resource
to be Healthy before pruning, which a broken release may never be); server-side apply
(``ServerSideApply=true``), not Argo CD's default client-side apply, with Argo CD's
server-side diff (``compare-options: ServerSideDiff=true``) to compare.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from envforge.core.names import DnsLabel
from envforge.gitops.platform import environment_labels
from envforge.gitops.record import EnvironmentRecord
from envforge.gitops.settings import GitOpsSettings

FINALIZER = "resources-finalizer.argocd.argoproj.io"
IN_CLUSTER = "https://kubernetes.default.svc"
VCLUSTER_CHART_REPO = "https://charts.loft.sh"
_DURATION = r"^\d+(s|m|h)$"
Manifest = dict[str, Any]


# --- the model of what envforge writes (extra fields are errors: a typo cannot slip by) --
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Backoff(_Strict):
    duration: str = Field(pattern=_DURATION)
    factor: int = Field(ge=1)
    maxDuration: str = Field(pattern=_DURATION)


class Retry(_Strict):
    limit: int = Field(ge=1, le=20)
    backoff: Backoff


class Automated(_Strict):
    prune: Literal[True]
    selfHeal: Literal[True]
    #: only the root app-of-apps needs it: its last Application leaving Git is a sync that
    #: deletes everything it tracks, which Argo CD refuses unless allowEmpty is set
    allowEmpty: bool = False


class SyncPolicy(_Strict):
    automated: Automated
    syncOptions: list[str] = Field(default_factory=list)
    retry: Retry


class Helm(_Strict):
    releaseName: str
    valuesObject: dict[str, Any] = Field(default_factory=dict)


class Directory(_Strict):
    recurse: bool


class ApplicationSource(_Strict):
    repoURL: str = Field(min_length=1)
    targetRevision: str = Field(min_length=1)
    path: str | None = None
    chart: str | None = None
    directory: Directory | None = None
    helm: Helm | None = None

    @model_validator(mode="after")
    def _path_or_chart(self) -> ApplicationSource:
        if (self.path is None) == (self.chart is None):
            raise ValueError("a source names exactly one of path (Git) or chart (Helm)")
        return self


class Destination(_Strict):
    server: str | None = None
    name: str | None = None
    namespace: DnsLabel

    @model_validator(mode="after")
    def _server_or_name(self) -> Destination:
        if (self.server is None) == (self.name is None):
            raise ValueError("a destination names exactly one of server or name")
        return self


class ApplicationSpec(_Strict):
    project: str
    source: ApplicationSource | None = None
    sources: list[ApplicationSource] | None = None
    destination: Destination
    syncPolicy: SyncPolicy

    @model_validator(mode="after")
    def _one_kind_of_source(self) -> ApplicationSpec:
        if (self.source is None) == (not self.sources):
            raise ValueError("give exactly one of source or sources")
        return self


class ApplicationMetadata(_Strict):
    name: DnsLabel
    namespace: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: list[str]

    @model_validator(mode="after")
    def _has_finalizer(self) -> ApplicationMetadata:
        if FINALIZER not in self.finalizers:
            raise ValueError(f"finalizers must include {FINALIZER}")
        return self


class ApplicationModel(_Strict):
    apiVersion: Literal["argoproj.io/v1alpha1"]
    kind: Literal["Application"]
    metadata: ApplicationMetadata
    spec: ApplicationSpec


# --- building the Applications ---------------------------------------------------------
#: How Argo CD applies an environment's objects: server-side apply (Argo CD's default is
#: client-side, kubectl's last-applied annotation), and only what is OutOfSync.
SYNC_OPTIONS = ("ServerSideApply=true", "ApplyOutOfSyncOnly=true")
#: Diffs by a server-side apply dry run on the API server (Argo CD's Server-Side Diff, since
#: 2.10). Without it, ServerSideApply=true makes Argo CD diff with its own built-in schema,
#: which fails on fields newer than its Kubernetes libraries (Argo CD 2.14 on Kubernetes 1.37:
#: "status.terminatingReplicas: field not declared in schema" for every Deployment).
COMPARE_OPTIONS = {"argocd.argoproj.io/compare-options": "ServerSideDiff=true"}
#: A failed sync is retried twice, 5 s then 10 s later: a transient error (a CRD not yet
#: established, a webhook restarting) heals, and the operation holds newer commits (a
#: rollback among them) back for 15 s at most, not the ~5 minutes of 5 retries up to 3m.
RETRY_LIMIT = 2
RETRY_BACKOFF: Manifest = {"duration": "5s", "factor": 2, "maxDuration": "10s"}


def _sync_policy() -> Manifest:
    return {
        "automated": {"prune": True, "selfHeal": True},
        "syncOptions": list(SYNC_OPTIONS),
        "retry": {"limit": RETRY_LIMIT, "backoff": dict(RETRY_BACKOFF)},
    }


def root_application(repo_url: str, branch: str = "main", name: str = "envforge-root",
                     namespace: str = "argocd", project: str = "default") -> Manifest:
    """The app-of-apps a platform team creates once per cluster (docs/gitops.md): it syncs
    the GitOps repository's ``argocd/`` directory (one Application file per environment) with
    prune, and ``allowEmpty``, without which Argo CD refuses to prune the last environment's
    Application ("auto-sync will wipe out all resources")."""
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": namespace,
                         "annotations": dict(COMPARE_OPTIONS)},
            "spec": {"project": project,
                     "source": {"repoURL": repo_url, "targetRevision": branch,
                                "path": "argocd", "directory": {"recurse": False}},
                     "destination": {"server": IN_CLUSTER, "namespace": namespace},
                     "syncPolicy": {"automated": {"prune": True, "selfHeal": True,
                                                  "allowEmpty": True},
                                    "syncOptions": list(SYNC_OPTIONS),
                                    "retry": {"limit": RETRY_LIMIT,
                                              "backoff": dict(RETRY_BACKOFF)}}}}


def _metadata(name: str, record: EnvironmentRecord, settings: GitOpsSettings) -> Manifest:
    return {
        "name": name,
        "namespace": settings.argocd_namespace,
        "labels": environment_labels(record),
        "annotations": {"envforge.dev/owner": record.spec.owner,
                        "envforge.dev/url": record.status.url, **COMPARE_OPTIONS},
        "finalizers": [FINALIZER],
    }


def vcluster_destination_name(record: EnvironmentRecord) -> str:
    return f"vcluster-{record.name}"


def _destination(record: EnvironmentRecord) -> Manifest:
    isolation = record.spec.isolation
    where: Manifest
    if isolation.mode == "vcluster":
        where = {"name": vcluster_destination_name(record)}
    elif isolation.mode == "cluster" and isolation.cluster:
        target = isolation.cluster
        where = {"server": target} if re.match(r"^https?://", target) else {"name": target}
    else:
        where = {"server": IN_CLUSTER}
    return {**where, "namespace": record.status.namespace}


def environment_applications(record: EnvironmentRecord, repo_url: str, branch: str,
                             settings: GitOpsSettings) -> list[Manifest]:
    """The Application(s) for ``argocd/<name>.yaml``: the environment's own, and for a
    vcluster the chart Application that runs the virtual cluster in the host namespace."""
    app = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": _metadata(record.name, record, settings),
        "spec": {
            "project": settings.argocd_project,
            "source": {"repoURL": repo_url, "targetRevision": branch,
                       "path": f"environments/{record.name}/manifests",
                       "directory": {"recurse": True}},
            "destination": _destination(record),
            "syncPolicy": _sync_policy(),
        },
    }
    if record.spec.isolation.mode != "vcluster":
        return [app]
    vcluster = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": _metadata(f"{record.name}-vcluster", record, settings),
        "spec": {
            "project": settings.argocd_project,
            "sources": [
                {"repoURL": VCLUSTER_CHART_REPO, "chart": "vcluster",
                 "targetRevision": settings.vcluster_chart_version,
                 "helm": {"releaseName": f"{record.name}-vcluster", "valuesObject": {
                     "sync": {"toHost": {"ingresses": {"enabled": True}}},
                     "controlPlane": {"statefulSet": {"labels": environment_labels(record)}},
                 }}},
                {"repoURL": repo_url, "targetRevision": branch,
                 "path": f"environments/{record.name}/host", "directory": {"recurse": True}},
            ],
            "destination": {"server": IN_CLUSTER, "namespace": record.status.namespace},
            "syncPolicy": _sync_policy(),
        },
    }
    return [vcluster, app]
