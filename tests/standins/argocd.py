"""THE ARGO CD STAND-IN: Argo CD's application controller, for tests and the demo only.

Argo CD cannot be built on these machines (its gitops-engine module does not build from the Go
module proxy), so this module does for envforge's Applications what Argo CD's application
controller does, against the REAL Kubernetes API server (scripts/services/kubernetes.sh):

- polls the ``Application`` objects in namespace ``argocd``;
- fetches ``spec.source.repoURL`` (git over file:// or http://, hooks disabled) at
  ``targetRevision`` and renders the plain YAML/JSON manifests under ``path`` (sub-directories
  only with ``directory.recurse: true``); the destination namespace fills in namespaced objects
  that name none; only the in-cluster destination is known;
- compares them with the live objects (a server-side dry-run apply where a plain comparison
  differs, as Argo CD's server-side diff does); with ``syncPolicy.automated`` (or an
  ``operation.sync`` set on the Application) syncs: server-side apply with field manager
  ``argocd-controller`` and ``force`` (Argo CD's ``ServerSideApply=true``), in Argo CD's kind
  order, the namespace first when ``syncOptions`` has ``CreateNamespace=true``; prunes tracked
  objects that left Git when ``automated.prune`` is set (after the rest with ``PruneLast=true``);
  retries a failed sync as ``syncPolicy.retry`` says (limit, backoff);
- tracks what it applied with the ``argocd.argoproj.io/tracking-id`` annotation
  (``<app>:<group>/<Kind>:<namespace>/<name>``), the default tracking method of Argo CD 3;
- on deletion of an Application carrying ``resources-finalizer.argocd.argoproj.io`` (or its
  ``/background`` form) deletes the tracked objects, waits until they are gone (a Namespace
  stays Terminating until the namespace controller emptied it) and then removes the finalizer;
- writes ``status.sync`` (Synced/OutOfSync/Unknown, revision, comparedTo), ``status.health``
  (the worst of its resources' health: Healthy/Suspended/Progressing/Missing/Degraded, from
  Argo CD's documented built-in checks), ``status.resources``, ``status.operationState``
  (phase Running/Succeeded/Failed/Error, message, syncResult with resources), ``conditions``,
  ``history``, ``reconciledAt``, ``sourceType``. The Application CRD has no status subresource,
  so status is written with a merge patch of the Application itself.

Not done (envforge does not use it): Helm, Kustomize, plugins, hooks, sync waves, multiple
sources, other clusters, projects' restrictions beyond the project having to exist.
Written from Argo CD's documentation; tests/integration/argocd/test_standin_conformance.py
checks it against that documentation (each test names its page).

    handle = start_argocd_standin(kubeconfig)   # a thread; handle.stop()
    python -m tests.standins.argocd --kubeconfig K   # a process (the demo)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import config as kube_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ApiException, NotFoundError, ResourceNotFoundError

NAMESPACE = "argocd"
FIELD_MANAGER = "argocd-controller"
TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
FINALIZER = "resources-finalizer.argocd.argoproj.io"
FINALIZER_BACKGROUND = "resources-finalizer.argocd.argoproj.io/background"
IN_CLUSTER = ("https://kubernetes.default.svc", "in-cluster")
#: Argo CD applies in this kind order within a wave (the order Helm installs in); unknown
#: kinds (custom resources, Applications) last.
KIND_ORDER = ["Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
              "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap",
              "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
              "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
              "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding",
              "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController",
              "ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job",
              "CronJob", "IngressClass", "Ingress", "APIService"]
#: Health from best to worst; an application's health is the worst of its resources'.
HEALTH_ORDER = ["Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown"]
#: Container waiting reasons Argo CD's pod check reports as Degraded.
FAILING_WAIT_REASONS = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull",
                        "CreateContainerConfigError", "InvalidImageName",
                        "CreateContainerError", "RunContainerError"}
_IGNORED_FOR_DIFF = {"resourceVersion", "managedFields", "generation", "uid",
                     "creationTimestamp"}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- identity of a resource --------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Key:
    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Key:
        group = obj["apiVersion"].rpartition("/")[0] if "/" in obj["apiVersion"] else ""
        meta = obj.get("metadata") or {}
        return cls(group, obj["kind"], meta.get("namespace") or "", meta["name"])

    def tracking_id(self, app: str) -> str:
        return f"{app}:{self.group}/{self.kind}:{self.namespace}/{self.name}"

    def describe(self) -> str:
        kind = self.kind.lower() + (f".{self.group}" if self.group else "")
        return f"{kind}/{self.name}"

    def order(self) -> tuple[int, str, str]:
        rank = KIND_ORDER.index(self.kind) if self.kind in KIND_ORDER else len(KIND_ORDER)
        return rank, self.namespace, self.name


def resource_entry(key: Key, version: str, sync_result: bool = False) -> dict[str, Any]:
    """A resource as status lists it (a syncResult entry names a namespace, empty or not)."""
    entry = {"group": key.group, "version": version, "kind": key.kind, "name": key.name}
    if key.namespace or sync_result:
        entry["namespace"] = key.namespace
    return entry


# --- health: Argo CD's built-in checks ----------------------------------------------------
def resource_health(obj: dict[str, Any]) -> dict[str, str] | None:
    """Argo CD's health of one live object, or None for kinds without a health check."""
    kind, status = obj.get("kind"), obj.get("status") or {}
    spec = obj.get("spec") or {}
    generation = (obj.get("metadata") or {}).get("generation", 0)
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        if kind == "Deployment" and spec.get("paused"):
            return {"status": "Suspended", "message": "Deployment is paused"}
        if status.get("observedGeneration", 0) < generation:
            return {"status": "Progressing",
                    "message": "Waiting for rollout to finish: observed generation less than "
                               "desired generation"}
        for condition in status.get("conditions") or []:
            if condition.get("reason") == "ProgressDeadlineExceeded":
                return {"status": "Degraded", "message":
                        f"{kind} {obj['metadata']['name']!r} exceeded its progress deadline"}
            if kind == "ReplicaSet" and condition.get("type") == "ReplicaFailure" and \
                    condition.get("status") == "True":
                return {"status": "Degraded", "message": condition.get("message", "")}
        if kind == "DaemonSet":
            wanted, updated = status.get("desiredNumberScheduled", 0), \
                status.get("updatedNumberScheduled", 0)
            available = status.get("numberAvailable", 0)
        else:
            wanted = spec.get("replicas", 1)
            updated = status.get("updatedReplicas", 0 if kind != "ReplicaSet" else
                                 status.get("replicas", 0))
            available = status.get("availableReplicas", 0) if kind != "StatefulSet" else \
                status.get("readyReplicas", 0)
        if updated < wanted:
            return {"status": "Progressing", "message":
                    f"Waiting for rollout to finish: {updated} out of {wanted} new replicas "
                    "have been updated..."}
        if kind == "Deployment" and status.get("replicas", 0) > updated:
            return {"status": "Progressing", "message":
                    f"Waiting for rollout to finish: {status.get('replicas', 0) - updated} "
                    "old replicas are pending termination..."}
        if available < updated:
            return {"status": "Progressing", "message":
                    f"Waiting for rollout to finish: {available} of {updated} updated "
                    "replicas are available..."}
        return {"status": "Healthy", "message": ""}
    if kind == "Pod":
        return _pod_health(obj)
    if kind == "Service":
        if spec.get("type") == "LoadBalancer" and \
                not (status.get("loadBalancer") or {}).get("ingress"):
            return {"status": "Progressing", "message": ""}
        return {"status": "Healthy", "message": ""}
    if kind == "Ingress":
        ingress = (status.get("loadBalancer") or {}).get("ingress")
        return {"status": "Healthy" if ingress else "Progressing", "message": ""}
    if kind == "PersistentVolumeClaim":
        phase = status.get("phase")
        return {"status": {"Bound": "Healthy", "Lost": "Degraded"}.get(phase, "Progressing"),
                "message": ""}
    if kind == "Job":
        if spec.get("suspend"):
            return {"status": "Suspended", "message": "Job is suspended"}
        for condition in status.get("conditions") or []:
            if condition.get("status") == "True" and condition.get("type") == "Complete":
                return {"status": "Healthy", "message": condition.get("message", "")}
            if condition.get("status") == "True" and condition.get("type") == "Failed":
                return {"status": "Degraded", "message": condition.get("message", "")}
        return {"status": "Progressing", "message": "Job is running"}
    return None


def _pod_health(pod: dict[str, Any]) -> dict[str, str]:
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FAILING_WAIT_REASONS:
            return {"status": "Degraded", "message": waiting.get("message", waiting["reason"])}
    phase = status.get("phase")
    if phase == "Succeeded":
        return {"status": "Healthy", "message": status.get("message", "")}
    if phase == "Failed":
        return {"status": "Degraded", "message": status.get("message", "")}
    if phase == "Running" and (pod.get("spec") or {}).get("restartPolicy", "Always") == "Always":
        ready = all(c.get("ready") for c in status.get("containerStatuses") or [{}])
        return {"status": "Healthy" if ready else "Progressing", "message": ""}
    return {"status": "Progressing", "message": status.get("message", "")}


def worst(statuses: list[str]) -> str:
    return max(statuses, key=HEALTH_ORDER.index, default="Healthy")


# --- the repository -----------------------------------------------------------------------
class ManifestError(Exception):
    """The source cannot be fetched or rendered (Argo CD: a ComparisonError condition)."""


def _git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", "-c", "core.hooksPath=/dev/null", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if done.returncode != 0:
        raise ManifestError(f"git {args[0]}: {done.stderr.strip()[-300:]}")
    return done.stdout


class RepositoryCache:
    """A bare mirror per repository URL; resolves a targetRevision and reads a path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, url: str, revision: str) -> tuple[Path, str]:
        mirror = self.root / hashlib.sha256(url.encode()).hexdigest()[:16]
        if not mirror.exists():
            _git("init", "--quiet", "--bare", str(mirror))
        wanted = revision or "HEAD"
        refs = dict(reversed(line.split("\t")) for line in
                    _git("ls-remote", url).splitlines() if "\t" in line)
        sha = (refs.get(wanted) or refs.get(f"refs/heads/{wanted}")
               or refs.get(f"refs/tags/{wanted}^{{}}") or refs.get(f"refs/tags/{wanted}"))
        if sha is None:
            if len(wanted) >= 7 and all(c in "0123456789abcdef" for c in wanted):
                sha = wanted
            else:
                raise ManifestError(f"unable to resolve {wanted!r} to a commit SHA in {url}")
        present = subprocess.run(["git", "--git-dir", str(mirror), "cat-file", "-e",
                                  f"{sha}^{{commit}}"], capture_output=True).returncode == 0
        if not present:
            _git("--git-dir", str(mirror), "fetch", "--quiet", "--force", url,
                 "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
        sha = _git("--git-dir", str(mirror), "rev-parse", "--verify",
                   f"{sha}^{{commit}}").strip()
        return mirror, sha

    def manifests(self, mirror: Path, sha: str, path: str, recurse: bool) -> list[dict[str, Any]]:
        path = path.strip("/") or "."
        prefix = "" if path == "." else path + "/"
        listed = _git("--git-dir", str(mirror), "ls-tree", "-r", "--name-only", sha, "--",
                      prefix or ".").splitlines()
        if not listed:
            raise ManifestError(f"{path}: app path does not exist")
        objects: list[dict[str, Any]] = []
        for name in sorted(listed):
            rest = name[len(prefix):]
            if not name.endswith((".yaml", ".yml", ".json")) or ("/" in rest and not recurse):
                continue
            text = _git("--git-dir", str(mirror), "show", f"{sha}:{name}")
            try:
                documents = list(yaml.safe_load_all(text))
            except yaml.YAMLError as e:
                raise ManifestError(f"{name}: {e}") from e
            for doc in documents:
                if isinstance(doc, dict) and doc.get("kind", "").endswith("List") \
                        and "items" in doc:
                    objects.extend(doc["items"])
                elif isinstance(doc, dict) and doc:
                    if "apiVersion" not in doc or "kind" not in doc:
                        raise ManifestError(f"{name}: object has no apiVersion or kind")
                    objects.append(doc)
        return objects


# --- the controller -----------------------------------------------------------------------
@dataclass
class SyncAttempt:
    revision: str
    succeeded: bool
    retry_count: int = 0
    retry_at: float = 0.0


@dataclass
class ArgoCDStandin:
    """Reconciles every Application in ``namespace`` each ``interval`` seconds."""

    kubeconfig: Path
    namespace: str = NAMESPACE
    interval: float = 1.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _attempts: dict[str, SyncAttempt] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.api = kube_config.new_client_from_config(str(self.kubeconfig))
        work = Path(tempfile.mkdtemp(prefix="argocd-standin-"))
        # discovery cached per instance: a cache shared through /tmp may describe another
        # server that had the same address
        self.client = DynamicClient(self.api, cache_file=str(work / "discovery.json"))
        self.apps = self._resource("argoproj.io/v1alpha1", "Application")
        self.projects = self._resource("argoproj.io/v1alpha1", "AppProject")
        if self.apps is None or self.projects is None:
            raise RuntimeError(f"the Argo CD CRDs are not installed on the server of "
                               f"{self.kubeconfig}")
        self.work = work
        self.repos = RepositoryCache(work / "repositories")
        self.repos.root.mkdir()
        self._ensure_default_project()

    # lifecycle
    def start(self) -> ArgoCDStandin:
        self._thread = threading.Thread(target=self._run, name="argocd-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.api.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile_all()
            except Exception as e:  # a bad round must not end the controller
                self._note(f"reconcile round failed: {type(e).__name__}: {e}")
            self._stop.wait(self.interval)

    def _note(self, message: str) -> None:
        self.errors = [*self.errors[-50:], message]
        print(f"argocd stand-in: {message}", file=sys.stderr, flush=True)

    def _ensure_default_project(self) -> None:
        """Argo CD creates the ``default`` AppProject (any source, any destination)."""
        try:
            self.projects.get(name="default", namespace=self.namespace)
        except NotFoundError:
            self.projects.create(namespace=self.namespace, body={
                "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
                "metadata": {"name": "default", "namespace": self.namespace},
                "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*",
                                                                 "namespace": "*"}],
                         "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}})

    def reconcile_all(self) -> None:
        for app in self.apps.get(namespace=self.namespace).to_dict().get("items") or []:
            if self._stop.is_set():
                return
            try:
                self.reconcile(app)
            except ApiException as e:
                if e.status not in (404, 409):  # deleted or changed meanwhile: next round
                    self._note(f"application {app['metadata']['name']}: {e.status} {_api_message(e)}")

    # one application
    def reconcile(self, app: dict[str, Any]) -> None:
        meta = app["metadata"]
        if meta.get("deletionTimestamp"):
            self._finalize(app)
            return
        name, spec = meta["name"], app.get("spec") or {}
        source = spec.get("source") or {}
        destination = spec.get("destination") or {}
        status: dict[str, Any] = {"reconciledAt": now(), "sourceType": "Directory",
                                  "controllerNamespace": self.namespace, "conditions": None}
        try:
            self._check_spec(spec)
            mirror, revision = self.repos.resolve(source["repoURL"],
                                                  source.get("targetRevision", "HEAD"))
            desired = self._render(name, spec, mirror, revision)
        except ManifestError as e:
            kind = "InvalidSpecError" if isinstance(e, InvalidSpec) else "ComparisonError"
            status.update(conditions=[{"type": kind, "message": str(e),
                                       "lastTransitionTime": now()}],
                          sync={"status": "Unknown", "comparedTo": {
                              "source": source, "destination": destination}})
            self._write(name, status)
            return
        compared = self._compare(name, desired, app)
        operation = app.get("operation") or {}
        automated = (spec.get("syncPolicy") or {}).get("automated")
        out_of_sync = any(r["status"] == "OutOfSync" for r in compared)
        if operation.get("sync") is not None or (automated is not None and out_of_sync
                                                 and self._may_auto_sync(app, revision)):
            self._sync(app, desired, compared, revision, status,
                       initiated={"automated": True} if not operation else
                       operation.get("initiatedBy") or {"username": "admin"})
            compared = self._compare(name, desired, app)
        status["resources"] = compared
        out_of_sync = any(r["status"] == "OutOfSync" for r in compared)
        status["sync"] = {"status": "OutOfSync" if out_of_sync else "Synced",
                          "revision": revision,
                          "comparedTo": {"source": source, "destination": destination}}
        health = worst([r["health"]["status"] for r in compared if "health" in r])
        previous = (app.get("status") or {}).get("health") or {}
        status["health"] = {"status": health, "lastTransitionTime":
                            previous.get("lastTransitionTime") if
                            previous.get("status") == health else now()}
        self._write(name, status, clear_operation=operation.get("sync") is not None)

    def _check_spec(self, spec: dict[str, Any]) -> None:
        destination = spec.get("destination") or {}
        where = destination.get("server") or destination.get("name")
        if where not in IN_CLUSTER:
            raise InvalidSpec(f"cluster {where!r} has not been configured")
        if spec.get("sources") or not (spec.get("source") or {}).get("path"):
            raise InvalidSpec("only a single Git directory source is supported here")
        project = spec.get("project") or ""
        try:
            self.projects.get(name=project, namespace=self.namespace)
        except NotFoundError as e:
            raise InvalidSpec(f"Application referencing project {project} which does not "
                              "exist") from e

    def _render(self, app: str, spec: dict[str, Any], mirror: Path, revision: str
                ) -> dict[Key, dict[str, Any]]:
        source = spec["source"]
        default_ns = spec["destination"].get("namespace") or ""
        desired: dict[Key, dict[str, Any]] = {}
        for obj in self.repos.manifests(mirror, revision, source["path"],
                                        bool((source.get("directory") or {}).get("recurse"))):
            meta = obj.setdefault("metadata", {})
            if not meta.get("name"):
                raise ManifestError(f"a {obj['kind']} in {source['path']} has no name")
            resource = self._resource(obj["apiVersion"], obj["kind"])
            if resource is None:
                raise ManifestError(
                    f"The Kubernetes API could not find {obj['apiVersion']}/{obj['kind']} for "
                    f"requested resource {meta.get('namespace', '')}/{meta['name']}. Make "
                    f"sure the \"{obj['kind']}\" CRD is installed on the destination cluster.")
            if resource.namespaced:
                meta.setdefault("namespace", default_ns)
            else:
                meta.pop("namespace", None)
            key = Key.of(obj)
            meta.setdefault("annotations", {})[TRACKING_ANNOTATION] = key.tracking_id(app)
            desired[key] = obj
        return desired

    def _resource(self, api_version: str, kind: str) -> Any:
        for attempt in range(2):
            try:
                return self.client.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                if attempt == 0:
                    self.client.resources.invalidate_cache()
        return None

    def _live(self, key: Key, api_version: str) -> dict[str, Any] | None:
        resource = self._resource(api_version, key.kind)
        if resource is None:
            return None
        try:
            return dict(resource.get(name=key.name, namespace=key.namespace or None).to_dict())
        except NotFoundError:
            return None

    def _compare(self, app: str, desired: dict[Key, dict[str, Any]], application: dict[str, Any]
                 ) -> list[dict[str, Any]]:
        """status.resources: every desired object, and every tracked one that left Git."""
        entries = []
        for key in sorted(desired, key=Key.order):
            obj = desired[key]
            live = self._live(key, obj["apiVersion"])
            entry = resource_entry(key, obj["apiVersion"].rpartition("/")[2])
            entry["status"] = "Synced" if live is not None and self._same(obj, live) \
                else "OutOfSync"
            health = resource_health(live) if live is not None else \
                {"status": "Missing", "message": ""}
            if health is not None:
                entry["health"] = {k: v for k, v in health.items() if v}
            entries.append(entry)
        for key, api_version in self._tracked_elsewhere(app, desired, application):
            entries.append({**resource_entry(key, api_version.rpartition("/")[2]),
                            "status": "OutOfSync", "requiresPruning": True})
        return entries

    def _tracked_elsewhere(self, app: str, desired: dict[Key, dict[str, Any]],
                           application: dict[str, Any]) -> list[tuple[Key, str]]:
        """Live objects carrying this app's tracking id that are no longer in Git (found
        from the resources the Application listed before)."""
        found = []
        for entry in (application.get("status") or {}).get("resources") or []:
            key = Key(entry.get("group", ""), entry["kind"], entry.get("namespace", ""),
                      entry["name"])
            if key in desired:
                continue
            api_version = f"{key.group}/{entry['version']}" if key.group else entry["version"]
            live = self._live(key, api_version)
            if live is not None and not live["metadata"].get("deletionTimestamp") and \
                    (live["metadata"].get("annotations") or {}).get(TRACKING_ANNOTATION) == \
                    key.tracking_id(app):
                found.append((key, api_version))
        return found

    def _same(self, desired: dict[str, Any], live: dict[str, Any]) -> bool:
        if _contains(live, desired):
            return True
        try:  # what applying would make of it, as Argo CD's server-side diff does
            dry = self._apply(desired, dry_run=True)
        except ApiException:
            return False
        def strip(o):
            return ({**o, "metadata": {k: v for k, v in o["metadata"].items()
                                                       if k not in _IGNORED_FOR_DIFF}})
        return bool(strip(dry) == strip(live))

    def _apply(self, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        resource = self._resource(obj["apiVersion"], obj["kind"])
        extra = {"dry_run": "All"} if dry_run else {}
        meta = obj["metadata"]
        return dict(self.client.server_side_apply(
            resource, body=obj, name=meta["name"], namespace=meta.get("namespace") or None,
            field_manager=FIELD_MANAGER, force_conflicts=True, **extra).to_dict())

    def _may_auto_sync(self, app: dict[str, Any], revision: str) -> bool:
        """Argo CD does not repeat a failed automated sync of the same revision except by the
        retry policy; selfHeal re-syncs drift after a successful one."""
        attempt = self._attempts.get(app["metadata"]["uid"])
        if attempt is None or attempt.revision != revision:
            return True
        if attempt.succeeded:
            return bool(((app["spec"].get("syncPolicy") or {}).get("automated") or {})
                        .get("selfHeal"))
        limit = ((app["spec"].get("syncPolicy") or {}).get("retry") or {}).get("limit", 0)
        return attempt.retry_count < limit and time.monotonic() >= attempt.retry_at

    def _sync(self, app: dict[str, Any], desired: dict[Key, dict[str, Any]],
              compared: list[dict[str, Any]], revision: str, status: dict[str, Any],
              initiated: dict[str, Any]) -> None:
        name, spec = app["metadata"]["name"], app["spec"]
        policy = spec.get("syncPolicy") or {}
        options = set(policy.get("syncOptions") or []) | set(
            ((app.get("operation") or {}).get("sync") or {}).get("syncOptions") or [])
        prune = bool((policy.get("automated") or {}).get("prune")) or bool(
            ((app.get("operation") or {}).get("sync") or {}).get("prune"))
        started = now()
        operation = {"sync": {"revision": revision, "syncOptions": sorted(options),
                              "prune": prune}, "initiatedBy": initiated}
        if policy.get("retry"):
            operation["retry"] = policy["retry"]
        self._write(name, {"operationState": {"operation": operation, "phase": "Running",
                                              "message": "syncing", "startedAt": started}})
        results: list[dict[str, Any]] = []
        failures: list[str] = []
        destination_ns = spec["destination"].get("namespace")
        if "CreateNamespace=true" in options and destination_ns:
            self._create_namespace(destination_ns, failures)
        out_of_sync = {(r["group"], r["kind"], r.get("namespace", ""), r["name"])
                       for r in compared if r["status"] == "OutOfSync"}
        for key in sorted(desired, key=Key.order):
            obj = desired[key]
            if "ApplyOutOfSyncOnly=true" in options and \
                    (key.group, key.kind, key.namespace, key.name) not in out_of_sync:
                continue
            result = {**resource_entry(key, obj["apiVersion"].rpartition("/")[2], True),
                      "syncPhase": "Sync"}
            try:
                self._apply(obj)
                result.update(status="Synced", hookPhase="Running",
                              message=f"{key.describe()} serverside-applied")
            except ApiException as e:
                message = _api_message(e)
                failures.append(message)
                result.update(status="SyncFailed", hookPhase="Failed", message=message)
            results.append(result)
        for entry in compared:
            if not entry.get("requiresPruning"):
                continue
            key = Key(entry["group"], entry["kind"], entry.get("namespace", ""), entry["name"])
            result = {**resource_entry(key, entry["version"], True), "syncPhase": "Sync"}
            if not prune:
                result.update(status="PruneSkipped", message="ignored (requires pruning)")
            else:
                try:
                    self._delete(key, f"{key.group}/{entry['version']}".lstrip("/"),
                                 "Foreground")
                    result.update(status="Pruned", hookPhase="Succeeded", message="pruned")
                except ApiException as e:
                    failures.append(_api_message(e))
                    result.update(status="SyncFailed", hookPhase="Failed",
                                  message=_api_message(e))
            results.append(result)
        uid = app["metadata"]["uid"]
        before = self._attempts.get(uid)
        retries = before.retry_count + 1 if before and before.revision == revision and \
            not before.succeeded else 0
        state: dict[str, Any] = {"operation": operation, "startedAt": started,
                                 "finishedAt": now(), "syncResult": {
                                     "resources": results, "revision": revision,
                                     "source": spec["source"]}}
        if failures:
            state.update(phase="Failed", message="one or more objects failed to apply, "
                         f"reason: {', '.join(failures)}", retryCount=retries)
            backoff = (policy.get("retry") or {}).get("backoff") or {}
            delay = min(_seconds(backoff.get("duration", "5s")) *
                        int(backoff.get("factor", 2)) ** retries,
                        _seconds(backoff.get("maxDuration", "3m")))
            self._attempts[uid] = SyncAttempt(revision, False, retries,
                                              time.monotonic() + delay)
            status["conditions"] = [{"type": "SyncError", "message": state["message"],
                                     "lastTransitionTime": now()}]
        else:
            state.update(phase="Succeeded", message="successfully synced (all tasks run)")
            self._attempts[uid] = SyncAttempt(revision, True)
            for result in results:
                result["hookPhase"] = "Succeeded" if result.get("status") != "PruneSkipped" \
                    else result.get("hookPhase")
            history = list((app.get("status") or {}).get("history") or [])
            history.append({"revision": revision, "deployedAt": state["finishedAt"],
                            "deployStartedAt": started, "source": spec["source"],
                            "id": (history[-1]["id"] + 1) if history else 0,
                            "initiatedBy": initiated})
            status["history"] = history[-10:]
        status["operationState"] = state

    def _create_namespace(self, name: str, failures: list[str]) -> None:
        namespaces = self.client.resources.get(api_version="v1", kind="Namespace")
        try:
            namespaces.get(name=name)
        except NotFoundError:
            try:
                namespaces.create(body={"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": name}})
            except ApiException as e:
                if e.status != 409:
                    failures.append(_api_message(e))

    def _delete(self, key: Key, api_version: str, propagation: str) -> None:
        resource = self._resource(api_version, key.kind)
        with contextlib.suppress(NotFoundError):
            resource.delete(name=key.name, namespace=key.namespace or None,
                            body={"propagationPolicy": propagation})

    def _finalize(self, app: dict[str, Any]) -> None:
        """Cascading deletion: delete what the app tracks; once all of it is gone, remove
        the finalizer so the API server can delete the Application."""
        meta = app["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        ours = [f for f in finalizers if f in (FINALIZER, FINALIZER_BACKGROUND)]
        if not ours:
            return
        propagation = "Background" if FINALIZER_BACKGROUND in ours else "Foreground"
        remaining = []
        for entry in (app.get("status") or {}).get("resources") or []:
            key = Key(entry.get("group", ""), entry["kind"], entry.get("namespace", ""),
                      entry["name"])
            api_version = f"{key.group}/{entry['version']}" if key.group else entry["version"]
            live = self._live(key, api_version)
            if live is None or (live["metadata"].get("annotations") or {}).get(
                    TRACKING_ANNOTATION) != key.tracking_id(meta["name"]):
                continue
            remaining.append(key)
            if not live["metadata"].get("deletionTimestamp"):
                self._delete(key, api_version, propagation)
        if remaining:
            self._write(meta["name"], {"operationState": {
                **((app.get("status") or {}).get("operationState") or {}),
                "message": f"waiting for {len(remaining)} resources to be deleted"}})
            return
        self.apps.patch(name=meta["name"], namespace=self.namespace,
                        content_type="application/merge-patch+json",
                        body={"metadata": {"finalizers": [f for f in finalizers
                                                          if f not in ours],
                                           "resourceVersion": meta["resourceVersion"]}})

    def _write(self, name: str, status: dict[str, Any], clear_operation: bool = False) -> None:
        """No status subresource on the Application CRD: a merge patch of the object."""
        body: dict[str, Any] = {"status": status}
        if clear_operation:
            body["operation"] = None
        self.apps.patch(name=name, namespace=self.namespace, body=body,
                        content_type="application/merge-patch+json")


class InvalidSpec(ManifestError):
    """The Application itself is wrong (Argo CD: an InvalidSpecError condition)."""


def _contains(live: Any, desired: Any) -> bool:
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            k in live and _contains(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(live) == len(desired) and all(
            _contains(a, b) for a, b in zip(live, desired, strict=True))
    return bool(live == desired)


def _api_message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body).get("message") or e.reason)
    except (TypeError, ValueError):
        return f"{e.status} {e.reason}"


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(duration[:-1]) * units.get(duration[-1], 1)


def root_application(repo_url: str, branch: str = "main", name: str = "envforge-root"
                     ) -> dict[str, Any]:
    """The app-of-apps a platform team creates once per cluster (docs/gitops.md): it syncs
    the ``argocd/`` directory of the GitOps repository, with prune."""
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"project": "default",
                     "source": {"repoURL": repo_url, "targetRevision": branch, "path": "argocd",
                                "directory": {"recurse": False}},
                     "destination": {"server": IN_CLUSTER[0], "namespace": NAMESPACE},
                     "syncPolicy": {"automated": {"prune": True, "selfHeal": True}}}}


def start_argocd_standin(kubeconfig: Path | str, interval: float = 1.0) -> ArgoCDStandin:
    return ArgoCDStandin(Path(kubeconfig), interval=interval).start()


def main() -> None:  # pragma: no cover - the demo's process
    parser = argparse.ArgumentParser(description="The Argo CD stand-in (tests and demo only)")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--root-repo", help="create the app-of-apps for this GitOps repo URL")
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    standin = ArgoCDStandin(Path(args.kubeconfig), interval=args.interval)
    if args.root_repo:
        body = root_application(args.root_repo)
        standin.client.server_side_apply(standin.apps, body=body, name=body["metadata"]["name"],
                                         namespace=NAMESPACE, field_manager="envforge-demo",
                                         force_conflicts=True)
    standin.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"argocd stand-in on: Applications in namespace {NAMESPACE} at "
          f"{standin.api.configuration.host}", flush=True)
    done.wait()
    standin.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
