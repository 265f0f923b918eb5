"""Asking Argo CD to refresh after a commit (envforge/gitops/refresh.py), the app-of-apps
envforge documents (allowEmpty) and the sync policy of an environment's Application."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from envforge.gitops.argocd import ApplicationModel, root_application
from envforge.gitops.refresh import (
    REFRESH_ANNOTATION,
    applications_reading,
    paths_overlap,
    refresh_after_push,
    refresh_repository_applications,
    same_repository,
)


def app(name: str, *urls: str, multi: bool = False) -> dict[str, Any]:
    sources = [{"repoURL": u, "path": "x", "targetRevision": "main"} for u in urls]
    spec: dict[str, Any] = {"sources": sources} if multi else {"source": sources[0]}
    return {"metadata": {"name": name}, "spec": spec}


class FakeCustomObjects:
    """The two CustomObjectsApi calls the refresh makes; records the patches."""

    def __init__(self, items: list[dict[str, Any]], missing: frozenset[str] = frozenset()
                 ) -> None:
        self.items, self.missing = items, missing
        self.patched: dict[str, dict[str, Any]] = {}

    def list_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                      plural: str, **_: Any) -> dict[str, Any]:
        assert (group, version, namespace, plural) == ("argoproj.io", "v1alpha1", "argocd",
                                                       "applications")
        return {"items": self.items}

    def patch_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                       plural: str, name: str, body: dict[str, Any],
                                       **_: Any) -> None:
        if name in self.missing:
            raise ApiException(status=404, reason="Not Found")
        self.patched[name] = body


def test_same_repository_ignores_case_trailing_slash_and_dot_git() -> None:
    assert same_repository("https://git.example.com/Team/GitOps.git",
                           "https://git.example.com/team/gitops/")
    assert same_repository("file:///srv/gitops.git", "file:///srv/gitops")
    assert not same_repository("file:///srv/gitops.git", "file:///srv/other.git")
    assert not same_repository("", "")


def test_only_applications_reading_the_repository_are_refreshed() -> None:
    repo = "file:///srv/gitops.git"
    custom = FakeCustomObjects([app("root", repo), app("pr-1", repo),
                                app("other", "https://charts.example.com"),
                                app("vc", "https://charts.loft.sh", repo, multi=True),
                                app("gone", repo)], missing=frozenset({"gone"}))
    assert applications_reading(custom.items, repo) == ["gone", "pr-1", "root", "vc"]
    done = refresh_repository_applications(custom, "argocd", repo)
    assert done == ["pr-1", "root", "vc"]  # a 404 (deleted meanwhile) is skipped
    assert custom.patched["root"] == {"metadata": {"annotations": {
        REFRESH_ANNOTATION: "normal"}}}  # a merge patch of the annotation only


def test_with_the_commits_paths_only_the_applications_reading_them_are_refreshed() -> None:
    """A create of pr-2 touches argocd/pr-2.yaml and environments/pr-2: the root app-of-apps
    and pr-2's Application are refreshed, not the other environments' (N per commit before)."""
    repo = "file:///srv/gitops.git"

    def at(name: str, path: str | None) -> dict[str, Any]:
        found = app(name, repo)
        found["spec"]["source"]["path"] = path
        return found

    items = [at("envforge-root", "argocd"), at("whole", None), at("dot", "./"),
             *(at(f"pr-{n}", f"environments/pr-{n}/manifests") for n in range(1, 21)),
             at("pr-2x", "environments/pr-2x/manifests"),
             app("elsewhere", "https://charts.example.com")]
    custom = FakeCustomObjects(items)
    done = refresh_repository_applications(custom, "argocd", repo,
                                           ["environments/pr-2", "argocd/pr-2.yaml"])
    assert done == ["dot", "envforge-root", "pr-2", "whole"]  # the root of the repo reads all
    assert applications_reading(items, repo, ["environments/pr-2/manifests/deployment.yaml"]
                                ) == ["dot", "pr-2", "whole"]
    assert applications_reading(items, repo, ["."]) == applications_reading(items, repo)
    assert len(applications_reading(items, repo, None)) == 24  # paths unknown: all of them
    assert paths_overlap("environments/pr-1/manifests", "environments/pr-1/")
    assert not paths_overlap("environments/pr-1/manifests", "environments/pr-10")
    assert not paths_overlap("argocd", "argocd-old/x.yaml")


def test_a_refusal_other_than_not_found_is_raised() -> None:
    class Refusing(FakeCustomObjects):
        def patch_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> None:
            raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(ApiException):
        refresh_repository_applications(Refusing([app("root", "file:///r")]), "argocd",
                                        "file:///r")


def test_the_hook_never_fails_a_commit(tmp_path: Path) -> None:
    """The hook opens the services' default cluster (here the real block loader on settings
    naming a kubeconfig); none configured is nothing to do, an unreachable one is logged."""
    from blocks.loader import BlockConnections
    from envforge.errors import ConfigurationError
    from envforge.settings import EnvforgeSettings

    def no_cluster() -> Any:
        raise ConfigurationError("no Kubernetes cluster configured")

    refresh_after_push("file:///r", "argocd", no_cluster)("0" * 40)  # nothing to do
    refresh_after_push("file:///r", "argocd", None)("0" * 40)  # no services: nothing to do
    unreachable = tmp_path / "kubeconfig"
    unreachable.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "
        "'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n")
    connections = BlockConnections(EnvforgeSettings.from_environ({"KUBECONFIG": str(unreachable)}))
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("envforge.gitops.refresh")
    # whatever another test did to the envforge loggers' levels, propagation or logging.disable
    level, disabled, off = logger.level, logging.root.manager.disable, logger.disabled
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logging.disable(logging.NOTSET)
    logger.disabled = False  # logging.config.dictConfig (Prefect's) disables existing loggers
    try:
        refresh_after_push("file:///r", "argocd", lambda: connections.kubernetes_cluster(None)
                           )("1" * 40)  # refused connection: logged
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logging.disable(disabled)
        logger.disabled = off
    assert any("could not ask Argo CD to refresh after commit 111111111111" in m for m in seen)


def test_root_application_allows_an_empty_sync_and_fits_the_model() -> None:
    root = root_application("file:///srv/gitops.git", name="envforge-root")
    policy = root["spec"]["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True, "allowEmpty": True}
    assert root["spec"]["source"]["path"] == "argocd"
    assert not root["spec"]["source"]["directory"]["recurse"]
    root["metadata"]["finalizers"] = ["resources-finalizer.argocd.argoproj.io"]
    ApplicationModel.model_validate(root)  # the same strict model as the environments'


def test_every_push_through_the_store_asks_for_a_refresh(tmp_path: Path) -> None:
    """The store hangs the refresh on its publisher, so commits made through the publisher
    directly (sleep, upgrade) and rollbacks are refreshed too; nothing when nothing changed."""
    import subprocess

    from envforge.git.publishing import GitPublisher
    from envforge.gitops.settings import GitOpsSettings
    from envforge.gitops.store import EnvironmentStore

    remote = tmp_path / "gitops.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(remote)],
                   check=True)
    seed = tmp_path / "seed"
    subprocess.run(["git", "clone", "--quiet", str(remote), str(seed)], check=True)
    (seed / "README.md").write_text("gitops\n")
    for args in (["add", "README.md"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit",
                                        "--quiet", "-m", "first"],
                 ["push", "--quiet", "origin", "HEAD:main"]):
        subprocess.run(["git", *args], cwd=seed, check=True)
    store = EnvironmentStore(GitPublisher(remote.as_uri(), "main", tmp_path / "cache"),
                             GitOpsSettings())
    assert store.publisher.after_push is not None  # the refresh of envforge/gitops/refresh.py
    pushed: list[str] = []
    changed: list[list[str] | None] = []

    def record(commit: str, paths: Any) -> None:
        pushed.append(commit)
        changed.append(None if paths is None else list(paths))

    store.publisher.after_push = record

    def write(root: Path) -> None:
        (root / "argocd").mkdir(exist_ok=True)
        (root / "argocd" / "x.yaml").write_text("a: 1\n")

    result = store.publisher.apply(["argocd"], write, "change")
    assert result.commit and pushed == [result.commit]
    assert store.publisher.apply(["argocd"], write, "again").commit is None  # nothing new
    assert pushed == [result.commit]
    store.undo(result.commit, "run-1")
    assert pushed == [result.commit, result.commit]  # the rollback is refreshed too
    assert changed == [["argocd"], None]  # a commit's paths; an undo's are not known
