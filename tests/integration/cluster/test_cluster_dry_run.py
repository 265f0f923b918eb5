"""The server-side dry run before commit, on the real API server: what only the server knows
refuses a manifest (named, with the server's reason) and nothing is created."""

from __future__ import annotations

import os
from typing import Any

import pytest

from envforge.cluster.client import open_cluster
from envforge.cluster.dry_run import dry_run_objects
from envforge.errors import ManifestValidationError, NamespaceTerminatingError
from tests.integration.cluster.conftest import ClusterUnderTest
from tests.kube import ControlPlane
from tests.services_fixtures import make_services


def deployment(namespace: str, **spec: Any) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "web"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": "a:1"}]}},
                     **spec}}


def application(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {"project": "default",
                     "source": {"repoURL": "file:///g.git", "path": name,
                                "targetRevision": "main"},
                     "destination": {"server": "https://kubernetes.default.svc",
                                     "namespace": name}, **spec}}


def terminating_namespace(plane: ControlPlane, name: str) -> None:
    """A namespace left Terminating: a ConfigMap in it holds a finalizer, as a slow controller
    would (release_namespace lets it go)."""
    plane.kubectl("create", "namespace", name)
    plane.kubectl("-n", name, "create", "configmap", "held")
    plane.kubectl("-n", name, "patch", "configmap", "held", "--type=merge", "-p",
                  '{"metadata":{"finalizers":["envforge.dev/test-hold"]}}')
    plane.kubectl("delete", "namespace", name, "--wait=false")


def release_namespace(plane: ControlPlane, name: str, check: bool = True) -> None:
    plane.kubectl("-n", name, "patch", "configmap", "held", "--type=merge", "-p",
                  '{"metadata":{"finalizers":null}}', check=check)


def test_valid_objects_of_a_new_environment_pass_and_nothing_is_created(
        cluster: ClusterUnderTest, env_name: str) -> None:
    objects = [("envs/ns.yaml", {"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": env_name}}),
               ("envs/web.yaml", deployment(env_name)),
               ("apps/app.yaml", application(env_name))]
    with open_cluster(make_services().connections) as reader:
        assert dry_run_objects(reader, objects) == []
        assert not reader.namespace_exists(env_name)
        assert reader.application("argocd", env_name) is None


def test_what_the_server_refuses_is_named_with_its_reason(
        cluster: ClusterUnderTest, env_name: str) -> None:
    cluster.plane.kubectl("create", "namespace", env_name)
    cluster.plane.kubectl("-n", env_name, "create", "quota", "tiny",
                          "--hard=pods=0,count/deployments.apps=0")
    objects = [("envs/web.yaml", deployment(env_name)),  # over the namespace's quota
               ("apps/app.yaml", application(env_name, syncPolicy={"retry": {"limit": "x"}})),
               ("envs/odd.yaml", {"apiVersion": "example.com/v1", "kind": "Widget",
                                  "metadata": {"name": "w", "namespace": env_name}})]
    with open_cluster(make_services().connections) as reader:
        problems = dry_run_objects(reader, objects)
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"envs/web.yaml: Deployment {env_name}/web: the API server "
                                  "refused it: 403 Forbidden: ")
    assert "exceeded quota: tiny" in problems[0]
    assert problems[1].startswith(f"apps/app.yaml: Application argocd/{env_name}: ")
    assert "spec.syncPolicy.retry.limit" in problems[1]  # the CRD's schema, on the server
    assert "does not serve Widget in example.com/v1" in problems[2]
    assert all("\n" not in p for p in problems)


def test_a_terminating_namespace_is_a_clear_temporary_error(
        cluster: ClusterUnderTest, env_name: str) -> None:
    plane = cluster.plane
    terminating_namespace(plane, env_name)
    try:
        with open_cluster(make_services().connections) as reader, pytest.raises(NamespaceTerminatingError) as caught:
            dry_run_objects(reader, [("envs/web.yaml", deployment(env_name))])
        assert f"namespace {env_name} is still terminating" in str(caught.value)
    finally:
        release_namespace(plane, env_name, check=False)


def test_the_offline_validation_runs_it_when_a_cluster_is_configured(
        cluster: ClusterUnderTest, env_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from envforge.gitops import validate

    checks = make_services().manifest_checks  # the composition root's server-side dry run
    cluster.plane.kubectl("create", "namespace", env_name)
    cluster.plane.kubectl("-n", env_name, "create", "quota", "tiny",
                          "--hard=count/deployments.apps=0")
    fits_offline = [("envs/web.yaml", deployment(env_name))]  # only the server knows the quota
    with pytest.raises(ManifestValidationError,
                       match=r"nothing was committed: envs/web.yaml: Deployment "
                             rf"{env_name}/web: the API server refused it: .*exceeded quota"):
        validate.validate_objects(fits_offline, "1.31", checks)
    switched_off = make_services({**os.environ, "ENVFORGE_SERVER_DRY_RUN": "0"})
    validate.validate_objects(fits_offline, "1.31", switched_off.manifest_checks)  # offline only


def test_recreating_an_environment_whose_namespace_still_terminates_commits_nothing(
        cluster: ClusterUnderTest, env_name: str, tmp_path: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Destroy, then create the same name at once: the namespace is still Terminating (held
    here by a finalizer, as by a slow controller). The create stops before Git with a
    temporary error that says why; once the namespace is gone the same create goes through."""
    from envforge.gitops.repository import open_store
    from tests.unit.gitops.helpers import spec, write_manifests

    services = make_services()
    plane = cluster.plane
    terminating_namespace(plane, env_name)
    manifests = write_manifests(tmp_path / "manifests")
    with open_store(services=services) as store:
        record = store.new_record(env_name, spec(), "1d")
        with pytest.raises(NamespaceTerminatingError, match="still terminating"):
            store.create(record, manifests)
        assert store.find(env_name) is None  # nothing committed
    release_namespace(plane, env_name)
    plane.kubectl("wait", "--for=delete", f"namespace/{env_name}", "--timeout=60s")
    with open_store(services=services) as store:
        store.create(store.new_record(env_name, spec(), "1d"), manifests)
        assert store.find(env_name) is not None
