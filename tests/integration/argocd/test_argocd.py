"""The behaviours of Argo CD that envforge relies on, checked on the real Argo CD (v2.14, the
session's: tests/argocd.py, scripts/services/argocd.sh) and the real API server. Each test names
the page it follows:

- tracking: https://argo-cd.readthedocs.io/en/release-3.3/user-guide/resource_tracking/
  ("annotation (default)", ``argocd.argoproj.io/tracking-id: <app>:<group>/<Kind>:<ns>/<name>``)
- sync options: https://argo-cd.readthedocs.io/en/stable/user-guide/sync-options/
  (ServerSideApply, CreateNamespace=true, PruneLast, ApplyOutOfSyncOnly)
- automated sync and prune: https://argo-cd.readthedocs.io/en/stable/user-guide/auto_sync/
- directory apps: https://argo-cd.readthedocs.io/en/stable/user-guide/directory/
- health: https://argo-cd.readthedocs.io/en/release-3.3/operator-manual/health/
- deletion: https://argo-cd.readthedocs.io/en/stable/user-guide/app_deletion/
  (``resources-finalizer.argocd.argoproj.io``: the app's resources are deleted first)
- the Application CRD (no status subresource): ../shared/schemas/argocd/application-crd.yaml
- refresh: https://argo-cd.readthedocs.io/en/stable/user-guide/commands/argocd_app_get/ and the
  ``argocd.argoproj.io/refresh`` annotation (operator-manual/reconcile: "refresh" on demand)
- allowEmpty: https://argo-cd.readthedocs.io/en/stable/user-guide/auto_sync/ ("Automatic
  pruning with allow-empty")

Argo CD re-reads Git every 180 s by itself here; every test asks for a refresh after each
commit, as envforge does, so a change is seen in seconds.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from envforge.gitops.argocd import COMPARE_OPTIONS, root_application
from tests.argocd import FINALIZER, REFRESH_ANNOTATION, TRACKING_ANNOTATION, ArgoCD, refresh
from tests.helpers import git
from tests.integration.cluster.real_node import NodeImages, node_images  # noqa: F401
from tests.kube import ControlPlane

pytestmark = pytest.mark.slow
#: the field manager of Argo CD's server-side apply
FIELD_MANAGER = "argocd-controller"


class Repo:
    """A GitOps remote and a working copy to commit manifests from."""

    def __init__(self, tmp: Path) -> None:
        self.remote = tmp / "gitops.git"
        self.work = tmp / "work"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(self.remote))
        git("clone", "--quiet", str(self.remote), str(self.work))

    def commit(self, files: dict[str, Any]) -> str:
        """Write (dict/list: YAML documents; str: as is) or remove (None) files; push; the
        new head."""
        for name, content in files.items():
            path = self.work / name
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                path.write_text(content)
                continue
            docs = content if isinstance(content, list) else [content]
            path.write_text(yaml.safe_dump_all(docs))
        git("add", "-A", cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", "change", cwd=self.work)
        git("push", "--quiet", "origin", "HEAD:main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path)


def kget(plane: ControlPlane, *args: str) -> dict[str, Any] | None:
    done = plane.kubectl("get", *args, "-o", "json", check=False)
    if done.returncode != 0:
        assert "NotFound" in done.stderr, done.stderr
        return None
    return dict(json.loads(done.stdout))


def wait_for(what: str, probe: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


@pytest.fixture
def app_name(kube_control_plane: ControlPlane) -> Iterator[str]:
    name = f"conf-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:  # the finalizer makes Argo CD delete what the app deployed
        kube_control_plane.kubectl("delete", "application", "-n", "argocd", name,
                                   "--ignore-not-found", "--wait=true", "--timeout=120s",
                                   check=False)
        kube_control_plane.kubectl("delete", "namespace", name, "--ignore-not-found",
                                   "--wait=false", check=False)


def application(name: str, repo: Repo, path: str, *, prune: bool = True, recurse: bool = False,
                options: list[str] | None = None, automated: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "project": "default",
        "source": {"repoURL": repo.remote.as_uri(), "targetRevision": "main", "path": path,
                   "directory": {"recurse": recurse}},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
        "syncPolicy": {"syncOptions": options or []}}
    if automated:
        spec["syncPolicy"]["automated"] = {"prune": prune, "selfHeal": True}
    metadata: dict[str, Any] = {"name": name, "namespace": "argocd", "finalizers": [FINALIZER]}
    if "ServerSideApply=true" in (options or []):  # as envforge's Applications (COMPARE_OPTIONS)
        metadata["annotations"] = dict(COMPARE_OPTIONS)
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": metadata, "spec": spec}


def create(plane: ControlPlane, obj: dict[str, Any]) -> None:
    plane.kubectl("create", "-f", "-", stdin=json.dumps(obj))


def app_status(plane: ControlPlane, name: str) -> dict[str, Any]:
    app = kget(plane, "application", "-n", "argocd", name)
    return dict((app or {}).get("status") or {})


def synced_to(plane: ControlPlane, name: str, revision: str, health: str = "Healthy"
              ) -> Callable[[], dict[str, Any] | None]:
    def probe() -> dict[str, Any] | None:
        status = app_status(plane, name)
        ok = ((status.get("sync") or {}).get("status") == "Synced"
              and (status.get("sync") or {}).get("revision") == revision
              and (status.get("health") or {}).get("status") == health
              and (status.get("operationState") or {}).get("phase") == "Succeeded")
        return status if ok else None
    return probe


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


#: The images the Deployments and Pods here run: on the real node (the default as root) busybox
#: from the session's registry, serving HTTP, or crashing at start (tests/integration/cluster/
#: real_node.py); with kwok (ENVFORGE_NODE=kwok) names nothing pulls, and the simulate
#: annotation makes kwok crash-loop a pod.
IMAGES = {"web": "web:1", "crash": "c:1"}


@pytest.fixture(autouse=True, scope="module")
def node_images_for_workloads(kube_control_plane: ControlPlane,
                              request: pytest.FixtureRequest) -> None:
    if kube_control_plane.node_kind == "real":
        images: NodeImages = request.getfixturevalue("node_images")
        IMAGES.update(web=images.image, crash=images.crash_image)


def crash_looping(template: dict[str, Any]) -> dict[str, Any]:
    """A pod template whose container fails at start (kwok: its simulate annotation)."""
    if IMAGES["crash"] == "c:1":
        template.setdefault("metadata", {})["annotations"] = {
            "envforge.dev/simulate": "CrashLoopBackOff"}
    container = template["spec"]["containers"][0]
    container["image"] = IMAGES["crash"]
    # never Ready, not even between a restart and its exit: a Ready instant would count as the
    # Deployment's progress and keep pushing its deadline out
    container["readinessProbe"] = {"exec": {"command": ["false"]}}
    return template


def deployment(name: str, *, crash: bool = False, deadline: int = 600) -> dict[str, Any]:
    template: dict[str, Any] = {"metadata": {"labels": {"app": name}},
                                "spec": {"containers": [{"name": "web", "image": IMAGES["web"]}],
                                         "terminationGracePeriodSeconds": 1}}
    if crash:
        crash_looping(template)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "progressDeadlineSeconds": deadline,
                     "selector": {"matchLabels": {"app": name}}, "template": template}}


def config_map(name: str, value: str = "1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"value": value}}


def ingress(name: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"rules": [{"host": f"{name}.example.com", "http": {"paths": [{
                "path": "/", "pathType": "Prefix", "backend": {"service": {
                    "name": name, "port": {"number": 80}}}}]}}]}}


def test_the_application_crd_has_no_status_subresource(kube_control_plane: ControlPlane
                                                       ) -> None:
    crd = kget(kube_control_plane, "crd", "applications.argoproj.io")
    assert crd is not None
    assert all(not v.get("subresources") for v in crd["spec"]["versions"])


def test_auto_sync_applies_tracks_and_reports(argocd_service: ArgoCD, repo: Repo,
                                              app_name: str,
                                              kube_control_plane: ControlPlane) -> None:
    plane = kube_control_plane
    head = repo.commit({"app/ns.yaml": namespace(app_name),
                        "app/web.yaml": [deployment("web"), config_map("settings")],
                        "app/ingress.yaml": ingress("web")})
    # ServerSideApply=true, as envforge's Applications (Argo CD's default is client-side)
    create(plane, application(app_name, repo, "app", options=["ServerSideApply=true"]))
    status = wait_for("Synced/Healthy", synced_to(plane, app_name, head))

    live = kget(plane, "deployment", "-n", app_name, "web", "--show-managed-fields")
    assert live is not None
    annotations = live["metadata"]["annotations"]
    assert annotations[TRACKING_ANNOTATION] == f"{app_name}:apps/Deployment:{app_name}/web"
    assert "app.kubernetes.io/instance" not in (live["metadata"].get("labels") or {})
    managers = {m["manager"]: m["operation"] for m in live["metadata"]["managedFields"]}
    assert managers[FIELD_MANAGER] == "Apply"  # server-side apply
    ns = kget(plane, "namespace", app_name)
    assert ns is not None
    # Argo CD 2.14 puts the destination namespace into a cluster-scoped object's id too
    assert ns["metadata"]["annotations"][TRACKING_ANNOTATION] == \
        f"{app_name}:/Namespace:{app_name}/{app_name}"

    assert status["sourceType"] == "Directory"
    assert status["sync"]["comparedTo"]["source"]["path"] == "app"
    operation = status["operationState"]
    assert operation["message"] == "successfully synced (all tasks run)"
    assert operation["operation"]["initiatedBy"] == {"automated": True}
    assert operation["syncResult"]["revision"] == head
    # What this operation's result lists depends on how many automated attempts the revision
    # took (on a loaded machine an earlier one may already have applied some objects): whatever
    # it lists was applied server-side, in Argo CD's kind order; the live objects' managed
    # fields (above and here) show server-side apply whichever attempt did it.
    synced = operation["syncResult"]["resources"]
    assert synced, operation
    for r in synced:
        assert r["message"].endswith(" serverside-applied"), r
    ns_live = kget(plane, "namespace", app_name, "--show-managed-fields")
    assert ns_live is not None
    ns_managers = {m["manager"]: m["operation"] for m in ns_live["metadata"]["managedFields"]}
    assert ns_managers[FIELD_MANAGER] == "Apply"
    order = ["Namespace", "ConfigMap", "Deployment", "Ingress"]  # Argo CD's kind order
    kinds = [r["kind"] for r in synced if r["kind"] in order]
    assert kinds == sorted(kinds, key=order.index), kinds
    resources = {r["kind"]: r for r in status["resources"]}
    assert resources["Deployment"]["health"]["status"] == "Healthy"
    assert resources["Ingress"]["health"]["status"] == "Healthy"
    assert "health" not in resources["ConfigMap"]  # no health check for ConfigMaps
    assert status["history"][-1]["revision"] == head

    # a change in Git is synced to the new revision once a refresh is asked for
    head = repo.commit({"app/web.yaml": [deployment("web"), config_map("settings", "2")]})
    refresh(plane, app_name)
    wait_for("the new revision", synced_to(plane, app_name, head), 30)
    cm = kget(plane, "configmap", "-n", app_name, "settings")
    assert cm is not None and cm["data"] == {"value": "2"}

    # drift in the cluster is healed (selfHeal), with force over another field manager
    plane.kubectl("patch", "configmap", "-n", app_name, "settings", "--type=merge",
                  "-p", '{"data":{"value":"drifted"}}')
    wait_for("self-heal", lambda: (kget(plane, "configmap", "-n", app_name, "settings")
                                   or {}).get("data") == {"value": "2"})


def test_prune_removes_what_left_git_and_only_with_prune(argocd_service: ArgoCD, repo: Repo,
                                                         app_name: str,
                                                         kube_control_plane: ControlPlane
                                                         ) -> None:
    plane = kube_control_plane
    head = repo.commit({"app/ns.yaml": namespace(app_name),
                        "app/a.yaml": config_map("a"), "app/b.yaml": config_map("b")})
    create(plane, application(app_name, repo, "app"))
    wait_for("Synced", synced_to(plane, app_name, head))
    head = repo.commit({"app/b.yaml": None})
    refresh(plane, app_name)
    status = wait_for("b pruned", synced_to(plane, app_name, head))
    assert kget(plane, "configmap", "-n", app_name, "b") is None
    assert kget(plane, "configmap", "-n", app_name, "a") is not None
    pruned = [r for r in status["operationState"]["syncResult"]["resources"]
              if r["name"] == "b"]
    assert pruned and pruned[0]["status"] == "Pruned" and pruned[0]["message"] == "pruned"

    # without automated.prune a resource that left Git stays and the app is OutOfSync
    plane.kubectl("patch", "application", "-n", "argocd", app_name, "--type=merge", "-p",
                  json.dumps({"spec": {"syncPolicy": {"automated": {"prune": False}}}}))
    head = repo.commit({"app/a.yaml": None})
    refresh(plane, app_name)
    status = wait_for("a left Git", lambda: (
        s := app_status(plane, app_name)).get("sync", {}).get("revision") == head and
        s["sync"]["status"] == "OutOfSync" and s)
    assert kget(plane, "configmap", "-n", app_name, "a") is not None
    left = [r for r in status["resources"] if r["name"] == "a"]
    assert left and left[0].get("requiresPruning") is True


def test_directory_recurse_and_create_namespace(argocd_service: ArgoCD, repo: Repo,
                                                app_name: str,
                                                kube_control_plane: ControlPlane) -> None:
    plane = kube_control_plane
    head = repo.commit({"app/top.yaml": config_map("top"),
                        "app/nested/deep.yaml": config_map("deep"),
                        "app/README.md": "not a manifest\n"})
    create(plane, application(app_name, repo, "app", options=["CreateNamespace=true"]))
    wait_for("Synced", synced_to(plane, app_name, head))
    assert kget(plane, "namespace", app_name) is not None  # created by CreateNamespace=true
    assert kget(plane, "configmap", "-n", app_name, "top") is not None
    assert kget(plane, "configmap", "-n", app_name, "deep") is None  # recurse is false
    plane.kubectl("patch", "application", "-n", "argocd", app_name, "--type=merge", "-p",
                  json.dumps({"spec": {"source": {"directory": {"recurse": True}}}}))
    wait_for("the nested manifest",
             lambda: kget(plane, "configmap", "-n", app_name, "deep") is not None)


def test_health_degraded_from_the_real_objects(argocd_service: ArgoCD, repo: Repo,
                                               app_name: str,
                                               kube_control_plane: ControlPlane) -> None:
    """A crash-looping bare Pod is Degraded (in CrashLoopBackOff); a Deployment whose pods
    crash is Progressing until its progress deadline passes, then Degraded."""
    plane = kube_control_plane
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crashing"},
           **crash_looping({"spec": {"containers": [{"name": "c"}],
                                     "terminationGracePeriodSeconds": 1}})}
    head = repo.commit({"app/ns.yaml": namespace(app_name), "app/pod.yaml": pod,
                        "app/web.yaml": deployment("web", crash=True,
                                                   deadline=5)})
    create(plane, application(app_name, repo, "app"))
    wait_for("Degraded", synced_to(plane, app_name, head, health="Degraded"), 90)
    # the Pod: Degraded while the kubelet holds its container in CrashLoopBackOff (between two
    # back-offs it runs, unready, and is Progressing: a real kubelet cycles through both)
    assert wait_for("the Pod Degraded", lambda: {
        r["kind"]: r.get("health", {}) for r in app_status(plane, app_name)["resources"]
    }["Pod"].get("status") == "Degraded", 90)
    assert wait_for("the Deployment's deadline", lambda: (
        h := {r["kind"]: r.get("health", {}) for r in
              app_status(plane, app_name)["resources"]})["Deployment"].get("status")
        == "Degraded" and h, 90)


def test_finalizer_deletes_resources_before_the_application(argocd_service: ArgoCD, repo: Repo, app_name: str,
                                                            kube_control_plane: ControlPlane
                                                            ) -> None:
    plane = kube_control_plane
    head = repo.commit({"app/ns.yaml": namespace(app_name), "app/web.yaml": deployment("web")})
    create(plane, application(app_name, repo, "app"))
    wait_for("Synced", synced_to(plane, app_name, head))
    plane.kubectl("delete", "application", "-n", "argocd", app_name, "--wait=false")
    # the Application stays (finalizer) while its Namespace is Terminating
    seen_terminating = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        app = kget(plane, "application", "-n", "argocd", app_name)
        ns = kget(plane, "namespace", app_name)
        if ns is not None and ns["status"].get("phase") == "Terminating":
            seen_terminating = True
            assert app is not None and FINALIZER in app["metadata"]["finalizers"]
        if app is None:
            break
        time.sleep(0.3)
    assert seen_terminating
    assert kget(plane, "application", "-n", "argocd", app_name) is None
    assert kget(plane, "namespace", app_name) is None  # deleted before the finalizer went


def test_a_missing_path_is_a_comparison_error(argocd_service: ArgoCD, repo: Repo,
                                              app_name: str,
                                              kube_control_plane: ControlPlane) -> None:
    repo.commit({"other/x.yaml": config_map("x")})
    create(kube_control_plane, application(app_name, repo, "app"))
    status = wait_for("a condition", lambda: app_status(kube_control_plane, app_name)
                      .get("conditions"))
    assert status[0]["type"] == "ComparisonError" and "app path does not exist" in \
        status[0]["message"]
    assert app_status(kube_control_plane, app_name)["sync"]["status"] == "Unknown"


def test_manual_sync_through_the_operation_field(argocd_service: ArgoCD, repo: Repo,
                                                 app_name: str,
                                                 kube_control_plane: ControlPlane) -> None:
    """Without automated sync nothing is applied until an operation asks (as `argocd app
    sync` writes it); the operation field is then cleared."""
    plane = kube_control_plane
    head = repo.commit({"app/a.yaml": config_map("a")})
    create(plane, application(app_name, repo, "app", automated=False,
                              options=["CreateNamespace=true"]))
    wait_for("OutOfSync", lambda: app_status(plane, app_name).get("sync", {}).get("status")
             == "OutOfSync")
    assert kget(plane, "configmap", "-n", app_name, "a") is None
    plane.kubectl("patch", "application", "-n", "argocd", app_name, "--type=merge", "-p",
                  # the operation carries its own sync options (the CLI copies the app's in):
                  # Argo CD does not read spec.syncPolicy.syncOptions for it
                  json.dumps({"operation": {"sync": {"revision": head,
                                                     "syncOptions": ["CreateNamespace=true"]},
                                            "initiatedBy": {"username": "admin"}}}))
    status = wait_for("Synced", synced_to(plane, app_name, head))
    assert status["operationState"]["operation"]["initiatedBy"] == {"username": "admin"}
    app = kget(plane, "application", "-n", "argocd", app_name)
    assert app is not None and "operation" not in app


def test_a_refresh_annotation_is_seen_at_once_and_removed(argocd_service: ArgoCD, repo: Repo,
                                                          app_name: str,
                                                          kube_control_plane: ControlPlane
                                                          ) -> None:
    """Without a refresh Argo CD sees a commit at its next poll (180 s here); with the
    annotation envforge writes after each commit it compares with the branch head at once and
    removes the annotation."""
    plane = kube_control_plane
    head = repo.commit({"app/ns.yaml": namespace(app_name), "app/a.yaml": config_map("a")})
    create(plane, application(app_name, repo, "app"))
    wait_for("Synced", synced_to(plane, app_name, head))
    head = repo.commit({"app/a.yaml": config_map("a", "2")})
    time.sleep(3)  # no refresh asked: still at the old revision
    assert app_status(plane, app_name)["sync"]["revision"] != head
    asked = time.monotonic()
    refresh(plane, app_name)
    wait_for("the new revision", synced_to(plane, app_name, head), 20)
    assert time.monotonic() - asked < 20
    app = kget(plane, "application", "-n", "argocd", app_name)
    assert app is not None
    assert REFRESH_ANNOTATION not in (app["metadata"].get("annotations") or {})


def test_the_last_application_leaving_git_is_pruned_only_with_allow_empty(
        argocd_service: ArgoCD, repo: Repo, app_name: str,
        kube_control_plane: ControlPlane) -> None:
    """An app-of-apps whose last Application leaves Git: Argo CD's automated sync refuses to
    delete every resource it tracks ("auto-sync will wipe out all resources") unless
    ``allowEmpty`` is set, which envforge's root_application does."""
    plane = kube_control_plane
    child = f"{app_name}-child"
    child_app = application(child, repo, "child", options=["CreateNamespace=true"])
    repo.commit({"apps/README.md": "one Application per file\n",
                        "apps/child.yaml": child_app,
                        "child/cm.yaml": config_map("c")})
    root = root_application(repo.remote.as_uri(), name=app_name)
    root["spec"]["source"]["path"] = "apps"
    root["spec"]["syncPolicy"]["automated"]["allowEmpty"] = False
    create(plane, root)
    try:
        wait_for("the child Application", lambda: kget(plane, "application", "-n", "argocd",
                                                        child), 90)
        wait_for("the child synced", lambda: kget(plane, "configmap", "-n", child, "c"), 90)
        head = repo.commit({"apps/child.yaml": None})
        refresh(plane, app_name)
        status = wait_for("the refusal", lambda: (
            s := app_status(plane, app_name)).get("sync", {}).get("revision") == head and s)
        assert status["sync"]["status"] == "OutOfSync"
        time.sleep(3)
        assert kget(plane, "application", "-n", "argocd", child) is not None  # not pruned
        conditions = " ".join(c.get("message", "") for c in
                              app_status(plane, app_name).get("conditions") or [])
        assert "allow-empty" in conditions or "wipe out all resources" in conditions, conditions
        plane.kubectl("patch", "application", "-n", "argocd", app_name, "--type=merge", "-p",
                      json.dumps({"spec": {"syncPolicy": {"automated": {"allowEmpty": True}}}}))
        # the refused revision counts as attempted; the next commit is synced, and pruned
        repo.commit({"apps/README.md": "one Application per file, none left\n"})
        refresh(plane, app_name)
        wait_for("the child pruned", lambda: kget(plane, "application", "-n", "argocd",
                                                  child) is None, 90)
        wait_for("its ConfigMap deleted by its finalizer",
                 lambda: kget(plane, "configmap", "-n", child, "c") is None, 90)
    finally:
        plane.kubectl("delete", "application", "-n", "argocd", child, "--ignore-not-found",
                      "--wait=true", "--timeout=60s", check=False)
        plane.kubectl("delete", "namespace", child, "--ignore-not-found", "--wait=false",
                      check=False)


def test_server_side_apply_diffs_only_with_server_side_diff(argocd_service: ArgoCD, repo: Repo,
                                                            app_name: str,
                                                            kube_control_plane: ControlPlane
                                                            ) -> None:
    """Why envforge's Applications carry ``compare-options: ServerSideDiff=true``: with
    ServerSideApply=true Argo CD 2.14 otherwise diffs with its built-in schema, which lacks
    fields of this Kubernetes (docs: user-guide/diff-strategies)."""
    plane = kube_control_plane
    head = repo.commit({"app/ns.yaml": namespace(app_name), "app/web.yaml": deployment("web")})
    app = application(app_name, repo, "app", options=["ServerSideApply=true"])
    del app["metadata"]["annotations"]
    create(plane, app)
    wait_for("Synced once", lambda: kget(plane, "deployment", "-n", app_name, "web"))
    refresh(plane, app_name)  # the live Deployment now has status fields the schema lacks
    conditions = wait_for("the comparison error", lambda: [
        c for c in app_status(plane, app_name).get("conditions") or []
        if c.get("type") == "ComparisonError"])
    assert "field not declared in schema" in conditions[0]["message"]
    plane.kubectl("annotate", "application", "-n", "argocd", app_name,
                  *(f"{k}={v}" for k, v in COMPARE_OPTIONS.items()))
    refresh(plane, app_name)
    wait_for("Synced with server-side diff", synced_to(plane, app_name, head))
