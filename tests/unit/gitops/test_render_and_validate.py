"""Rendering an environment (template manifests, platform isolation, Argo CD Applications) and
validating it before commit."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from envforge.errors import ConfigurationError, ManifestValidationError
from envforge.gitops.argocd import FINALIZER, IN_CLUSTER
from envforge.gitops.record import Isolation
from envforge.gitops.render import render_environment
from envforge.gitops.settings import GitOpsSettings
from envforge.gitops.validate import validate_objects
from tests.unit.gitops.helpers import DEPLOYMENT, NOW, SERVICE, offline_store, spec, write_manifests

SETTINGS = GitOpsSettings(wildcard_domain="preview.example.test", tls_secret="wild-tls")
REPO = "https://git.example.com/gitops.git"


def _render(tmp_path: Path, isolation: Isolation | None = None,
            files: dict[str, str] | None = None) -> Any:
    record = offline_store().new_record("pr-9", spec(isolation, replicas=2), "48h", now=NOW)
    manifests = write_manifests(tmp_path / "manifests", files)
    return record, render_environment(record, manifests, REPO, "main", SETTINGS)


def _objects(rendered: Any, kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in rendered.objects if doc["kind"] == kind]


def test_files_of_an_environment(tmp_path: Path) -> None:
    _, rendered = _render(tmp_path)
    assert sorted(rendered.files) == [
        "argocd/pr-9.yaml",
        "environments/pr-9/environment.yaml",
        "environments/pr-9/manifests/deployment.yaml",
        "environments/pr-9/manifests/envforge-namespace.yaml",
        "environments/pr-9/manifests/envforge-network-policy.yaml",
        "environments/pr-9/manifests/envforge-quota.yaml",
        "environments/pr-9/manifests/envforge-rbac.yaml",
        "environments/pr-9/manifests/ingress.yaml",
        "environments/pr-9/manifests/service.yaml",
    ]
    assert rendered.paths == ["environments/pr-9", "argocd/pr-9.yaml"]
    validate_objects(rendered.objects, "1.31")


def test_template_manifests_are_rendered_namespaced_and_labelled(tmp_path: Path) -> None:
    _, rendered = _render(tmp_path)
    (deployment,) = _objects(rendered, "Deployment")
    assert deployment["spec"]["replicas"] == 2  # ${{ parameters.replicas }}
    assert deployment["metadata"]["namespace"] == "pr-9"
    assert deployment["metadata"]["labels"]["envforge.dev/environment"] == "pr-9"


def test_the_ingress_moves_to_the_random_host_with_tls_by_reference(tmp_path: Path) -> None:
    record, rendered = _render(tmp_path)
    (ingress,) = _objects(rendered, "Ingress")
    assert [r["host"] for r in ingress["spec"]["rules"]] == [record.status.host]
    assert ingress["spec"]["tls"] == [{"hosts": [record.status.host], "secretName": "wild-tls"}]
    assert record.status.host.startswith("pr-9-")
    assert record.status.host.endswith(".preview.example.test")


def test_an_ingress_is_made_when_the_template_has_none(tmp_path: Path) -> None:
    _record, rendered = _render(tmp_path, files={"deployment.yaml": DEPLOYMENT,
                                                "service.yaml": SERVICE})
    (ingress,) = _objects(rendered, "Ingress")
    assert ingress["metadata"]["name"] == "envforge-ingress"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "app", "port": {"name": "http"}}
    validate_objects(rendered.objects, "1.31")


def test_platform_isolation_objects(tmp_path: Path) -> None:
    _record, rendered = _render(tmp_path)
    (namespace,) = _objects(rendered, "Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["envforge.dev/environment"] == "pr-9"
    assert labels["envforge.dev/owner"] == "group-team-a"
    assert labels["envforge.dev/expires-at"] == "20261126T120000Z"
    assert _objects(rendered, "ResourceQuota") and _objects(rendered, "LimitRange")
    policies = {p["metadata"]["name"]: p for p in _objects(rendered, "NetworkPolicy")}
    assert policies["envforge-default-deny"]["spec"] == {"podSelector": {},
                                                         "policyTypes": ["Ingress"]}
    admitted = policies["envforge-allow-ingress-controller"]["spec"]["ingress"][0]["from"][0]
    assert admitted["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"}
    (binding,) = _objects(rendered, "RoleBinding")
    assert binding["subjects"][0] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                      "name": "team-a"}


def test_the_argocd_application(tmp_path: Path) -> None:
    _, rendered = _render(tmp_path)
    (app,) = yaml.safe_load_all(rendered.files["argocd/pr-9.yaml"])
    assert app["metadata"]["finalizers"] == [FINALIZER]
    assert app["spec"]["source"] == {"repoURL": REPO, "targetRevision": "main",
                                     "path": "environments/pr-9/manifests",
                                     "directory": {"recurse": True}}
    assert app["spec"]["destination"] == {"server": IN_CLUSTER, "namespace": "pr-9"}
    policy = app["spec"]["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True}
    assert policy["retry"]["limit"] >= 1
    assert "CreateNamespace=true" not in policy["syncOptions"]


def test_vcluster_isolation_adds_the_chart_application_and_host_namespace(tmp_path: Path) -> None:
    _, rendered = _render(tmp_path, Isolation(mode="vcluster"))
    vcluster, app = yaml.safe_load_all(rendered.files["argocd/pr-9.yaml"])
    assert vcluster["metadata"]["name"] == "pr-9-vcluster"
    chart, host = vcluster["spec"]["sources"]
    assert chart["chart"] == "vcluster" and chart["helm"]["releaseName"] == "pr-9-vcluster"
    assert host["path"] == "environments/pr-9/host"
    assert app["spec"]["destination"] == {"name": "vcluster-pr-9", "namespace": "pr-9"}
    assert "environments/pr-9/host/namespace.yaml" in rendered.files
    validate_objects(rendered.objects, "1.31")


def test_another_cluster_is_a_different_destination(tmp_path: Path) -> None:
    _, rendered = _render(tmp_path, Isolation(mode="cluster", cluster="https://10.0.0.1:6443"))
    (app,) = yaml.safe_load_all(rendered.files["argocd/pr-9.yaml"])
    assert app["spec"]["destination"] == {"server": "https://10.0.0.1:6443", "namespace": "pr-9"}


def test_a_bad_manifest_names_file_object_and_field(tmp_path: Path) -> None:
    _, rendered = _render(tmp_path, files={
        "deployment.yaml": DEPLOYMENT.replace("replicas: ${{ parameters.replicas }}",
                                              "replicas: two")})
    with pytest.raises(ManifestValidationError) as info:
        validate_objects(rendered.objects, "1.31")
    message = str(info.value)
    assert "environments/pr-9/manifests/deployment.yaml" in message
    assert "Deployment pr-9/app" in message and "field spec.replicas" in message
    assert "nothing was committed" in message


def test_unknown_kinds_and_cluster_scoped_objects_are_refused(tmp_path: Path) -> None:
    _, rendered = _render(tmp_path, files={"x.yaml": "apiVersion: apps/v1\nkind: Deploymnet\n"
                                                     "metadata: {name: x}\n"})
    with pytest.raises(ManifestValidationError, match=r"x.yaml: Deploymnet pr-9/x: field kind"):
        validate_objects(rendered.objects, "1.31")
    with pytest.raises(ManifestValidationError, match="cluster-scoped"):
        _render(tmp_path / "b", files={"ns.yaml": "apiVersion: v1\nkind: Namespace\n"
                                                  "metadata: {name: other}\n"})


def test_a_broken_argocd_field_is_named(tmp_path: Path) -> None:
    _, rendered = _render(tmp_path)
    for _file, doc in rendered.objects:
        if doc["kind"] == "Application":
            doc["spec"]["syncPolicy"]["automated"]["prune"] = False
            del doc["metadata"]["finalizers"]
    with pytest.raises(ManifestValidationError) as info:
        validate_objects(rendered.objects, "1.31")
    assert "argocd/pr-9.yaml: Application argocd/pr-9: field spec.syncPolicy.automated.prune" \
        in str(info.value)
    assert "field metadata.finalizers" in str(info.value)


def test_template_expression_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestValidationError, match=r"manifests/d.yaml: cannot render: .*nope"):
        _render(tmp_path, files={"d.yaml": "x: ${{ parameters.nope }}\n"})


def test_an_unsupported_kubernetes_version_is_a_configuration_error(tmp_path: Path) -> None:
    _, rendered = _render(tmp_path)
    with pytest.raises(ConfigurationError, match="ENVFORGE_KUBERNETES_VERSION"):
        validate_objects(rendered.objects, "9.99")
