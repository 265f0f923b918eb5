"""The stand-in's application controller: reconciles every Application in the namespace each
interval (compare, automated or requested sync, prune, retry, cascading deletion) and writes
its status by merge patch (the Application CRD has no status subresource)."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import config as kube_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ApiException, NotFoundError, ResourceNotFoundError

from tests.standins.argocd.health import resource_health, worst
from tests.standins.argocd.repository import InvalidSpec, ManifestError, RepositoryCache
from tests.standins.argocd.resources import (
    FIELD_MANAGER,
    FINALIZER,
    FINALIZER_BACKGROUND,
    IGNORED_FOR_DIFF,
    IN_CLUSTER,
    NAMESPACE,
    TRACKING_ANNOTATION,
    Key,
    contains_fields,
    now,
    resource_entry,
)


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
                    self._note(f"application {app['metadata']['name']}: {e.status} {api_message(e)}")

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
        if contains_fields(live, desired):
            return True
        try:  # what applying would make of it, as Argo CD's server-side diff does
            dry = self._apply(desired, dry_run=True)
        except ApiException:
            return False
        def strip(o):
            return ({**o, "metadata": {k: v for k, v in o["metadata"].items()
                                                       if k not in IGNORED_FOR_DIFF}})
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
                message = api_message(e)
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
                    failures.append(api_message(e))
                    result.update(status="SyncFailed", hookPhase="Failed",
                                  message=api_message(e))
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
            delay = min(duration_seconds(backoff.get("duration", "5s")) *
                        int(backoff.get("factor", 2)) ** retries,
                        duration_seconds(backoff.get("maxDuration", "3m")))
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
                    failures.append(api_message(e))

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



def api_message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body).get("message") or e.reason)
    except (TypeError, ValueError):
        return f"{e.status} {e.reason}"


def duration_seconds(duration: str) -> float:
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


