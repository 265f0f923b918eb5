"""Every Argo CD resource envforge renders is valid against the Argo CD CRDs' own
openAPIV3Schema (unmodified Argo CD 3.6 copies in ../shared/schemas/argocd, read in place)."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from envforge.gitops.record import Isolation
from envforge.gitops.render import render_environment
from envforge.gitops.settings import GitOpsSettings
from tests.integration.gitops.conftest import ARGOCD_SCHEMAS
from tests.unit.gitops.helpers import offline_store, spec, write_manifests


def _crd_schema(kind: str) -> dict[str, Any]:
    file = ARGOCD_SCHEMAS / f"{kind.lower()}-crd.yaml"
    if not file.is_file():
        pytest.skip(f"Argo CD CRD schemas not found at {ARGOCD_SCHEMAS} (the shared folder "
                    "beside the repository); cannot check against Argo CD's own schema")
    crd = yaml.safe_load(file.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("isolation", [
    Isolation(), Isolation(mode="vcluster"), Isolation(mode="cluster", cluster="staging-eu"),
    Isolation(mode="cluster", cluster="https://10.0.0.1:6443")], ids=str)
def test_rendered_applications_fit_the_argocd_crd(tmp_path: Path, isolation: Isolation) -> None:
    validator = Draft7Validator(_crd_schema("Application"))
    record = offline_store().new_record("pr-5", spec(isolation), "48h")
    rendered = render_environment(record, write_manifests(tmp_path / "m"),
                                  "https://git.example.com/gitops.git", "main", GitOpsSettings())
    apps = [doc for _, doc in rendered.objects if doc["apiVersion"].startswith("argoproj.io/")]
    assert apps and all(doc["kind"] == "Application" for doc in apps)
    for app in apps:
        errors = sorted(validator.iter_errors(app), key=lambda e: list(e.path))
        assert [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors] == []


def test_the_schema_check_catches_a_broken_application(tmp_path: Path) -> None:
    """The check above can fail: a wrong type in a field the CRD types is reported."""
    validator = Draft7Validator(_crd_schema("Application"))
    record = offline_store().new_record("pr-5", spec(), "48h")
    rendered = render_environment(record, write_manifests(tmp_path / "m"),
                                  "https://git.example.com/gitops.git", "main", GitOpsSettings())
    (app,) = [doc for _, doc in rendered.objects if doc["kind"] == "Application"]
    app["spec"]["syncPolicy"]["retry"]["limit"] = "five"
    assert [list(e.path) for e in validator.iter_errors(app)] == [
        ["spec", "syncPolicy", "retry", "limit"]]
