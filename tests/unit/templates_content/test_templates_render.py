"""The python-, node- and java-service templates: they validate, their parameter defaults are
valid, and what they render (without Prefect, in a dry run) is valid Kubernetes, a Dockerfile
exposing the chosen port, a catalog entry, and source code that compiles."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft7Validator

from envforge.errors import ParameterError
from envforge.run.runner import TemplateRun
from envforge.run.validation import validate_template_dir
from envforge.templating.loader import load_template
from envforge.templating.parameters import pages, strip_ui, validate_parameters

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"
K8S_VERSION = "1.30"
#: template -> (its language-version parameter, every value that parameter allows)
VERSION_PARAMETER = {
    "python-service": ("pythonVersion", ["3.11", "3.12"]),
    "node-service": ("nodeVersion", ["20", "22"]),
    "java-service": ("javaVersion", ["17", "21"]),
}
NAMES = sorted(VERSION_PARAMETER)


def render(template_name: str, parameters: dict[str, Any], into: Path) -> dict[str, Any]:
    """Dry-run the template, copy the rendered service directory to ``into``, return output."""
    run = TemplateRun(load_template(TEMPLATES / template_name), parameters, dry_run=True)
    try:
        result = run.run()
        statuses = {report.id: report.status for report in result.steps}
        assert statuses == {"fetch-base": "dry-run", "log": "dry-run", "publish": "faked"}
        shutil.copytree(run.workspace / "service", into)
    finally:
        run.close()
    assert not run.workspace.exists()
    return result.output


@pytest.fixture(params=NAMES)
def rendered(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    name: str = request.param
    render(name, {"name": "demo-app"}, tmp_path / "service")
    yield name, tmp_path / "service"


def manifests(service: Path) -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for file in sorted((service / "manifests").glob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text(encoding="utf-8")):
            docs[doc["kind"]] = doc
    return docs


@pytest.mark.parametrize("name", NAMES)
def test_template_passes_envforge_validation(name: str) -> None:
    report = validate_template_dir(TEMPLATES / name)
    assert report.problems == []
    assert report.template == name


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_has_a_title_description_and_a_valid_default(name: str) -> None:
    template = load_template(TEMPLATES / name)
    assert [page["title"] for page in pages(template)] == ["Service", "Deployment"]
    properties: dict[str, Any] = {}
    for page in pages(template):
        properties.update(page["properties"])
    expected = {"name", "description", "owner", "port", "replicas", "imageRegistry", "domain",
                VERSION_PARAMETER[name][0]}
    assert set(properties) == expected
    for key, prop in properties.items():
        assert prop.get("title") and prop.get("description"), f"{key} needs title/description"
        if key != "name":
            Draft7Validator(strip_ui(prop)).validate(prop["default"])
    assert properties["name"]["ui:autofocus"] is True
    assert properties["owner"]["ui:field"] == "OwnerPicker"
    assert properties[VERSION_PARAMETER[name][0]]["enum"] == VERSION_PARAMETER[name][1]
    values = validate_parameters(template, {"name": "demo-app"})
    assert values["port"] == 8080 and values["replicas"] == 1
    assert values["imageRegistry"] == "127.0.0.1:5000"
    assert values["domain"] == "preview.example.test"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "bad", [{"name": "Demo_App"}, {"name": "demo-app", "port": 80},
            {"name": "demo-app", "replicas": 6}, {"name": "demo-app", "domain": "a b"}]
)
def test_bad_parameters_are_refused(name: str, bad: dict[str, Any]) -> None:
    with pytest.raises(ParameterError):
        validate_parameters(load_template(TEMPLATES / name), bad)


def test_rendered_manifests_are_valid_kubernetes(rendered: tuple[str, Path]) -> None:
    _, service = rendered
    docs = manifests(service)
    assert set(docs) == {"Deployment", "Service", "Ingress"}
    for doc in docs.values():
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"]["name"] == "demo-app"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "envforge"

    deployment = docs["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["image"] == "127.0.0.1:5000/demo-app:latest"
    assert container["ports"][0]["containerPort"] == 8080
    assert {"requests", "limits"} <= set(container["resources"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert deployment["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "demo-app"}

    assert docs["Service"]["spec"]["type"] == "ClusterIP"
    ingress = docs["Ingress"]["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["rules"][0]["host"] == "demo-app.preview.example.test"


def test_rendered_files_hold_no_expressions_except_copied_ones(
    rendered: tuple[str, Path],
) -> None:
    _, service = rendered
    for file in service.rglob("*"):
        if not file.is_file():
            continue
        text = file.read_text(encoding="utf-8")
        if ".github" in file.parts:  # copyWithoutTemplating: GitHub's own expressions kept
            assert "${{ github.sha }}" in text
        else:
            assert "${{" not in text and "{%" not in text, file


def test_catalog_entry_is_a_component(rendered: tuple[str, Path]) -> None:
    _, service = rendered
    entity = yaml.safe_load((service / "catalog-info.yaml").read_text(encoding="utf-8"))
    assert entity["kind"] == "Component"
    assert entity["metadata"]["name"] == "demo-app"
    assert entity["spec"] == {"type": "service", "lifecycle": "experimental",
                              "owner": "group:platform"}
    assert "# demo-app" in (service / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", NAMES)
def test_chosen_values_reach_every_file(name: str, tmp_path: Path) -> None:
    version_key, versions = VERSION_PARAMETER[name]
    description = 'Says "hi" <b> & more: yes'
    output = render(name, {"name": "orders-api", "port": 9123, "replicas": 3,
                           version_key: versions[0], "imageRegistry": "registry.test:5001/team",
                           "domain": "apps.example.test", "description": description},
                    tmp_path / "service")
    service = tmp_path / "service"
    dockerfile = (service / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^EXPOSE 9123$", dockerfile, re.MULTILINE)
    assert f":{versions[0]}" in dockerfile or f"-{versions[0]}" in dockerfile
    assert dockerfile.count("\nFROM ") + dockerfile.startswith("FROM ") == (
        2 if name == "java-service" else 1)
    assert re.search(r"^USER 10001", dockerfile, re.MULTILINE)
    docs = manifests(service)
    for doc in docs.values():
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert docs["Deployment"]["spec"]["replicas"] == 3
    assert container["image"] == "registry.test:5001/team/orders-api:latest"
    assert container["ports"][0]["containerPort"] == 9123
    assert docs["Ingress"]["spec"]["rules"][0]["host"] == "orders-api.apps.example.test"
    entity = yaml.safe_load((service / "catalog-info.yaml").read_text(encoding="utf-8"))
    assert entity["metadata"]["description"] == description
    assert {"title": "Open orders-api", "url": "https://orders-api.apps.example.test"} in (
        output["links"])
    assert "orders-api" in output["text"][0]["content"]


def test_python_skeleton_tests_pass(tmp_path: Path) -> None:
    render("python-service", {"name": "demo-app", "description": 'a "quoted" one'},
           tmp_path / "service")
    done = subprocess.run(
        [sys.executable, "-m", "unittest", "discover", "-s", "tests", "-t", "."],
        cwd=tmp_path / "service", capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Ran 3 tests" in done.stderr


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_skeleton_is_valid_javascript_and_json(tmp_path: Path) -> None:
    render("node-service", {"name": "demo-app", "description": 'a "quoted" one'},
           tmp_path / "service")
    service = tmp_path / "service"
    package = json.loads((service / "package.json").read_text(encoding="utf-8"))
    assert package["name"] == "demo-app" and "express" in package["dependencies"]
    assert package["description"] == 'a "quoted" one'
    for file in sorted(service.rglob("*.js")):
        done = subprocess.run(["node", "--check", str(file)], capture_output=True, text=True,
                              timeout=30, check=False)
        assert done.returncode == 0, f"{file}: {done.stderr}"


@pytest.mark.skipif(shutil.which("javac") is None, reason="javac is not installed")
def test_java_skeleton_compiles(tmp_path: Path) -> None:
    render("java-service", {"name": "demo-app", "javaVersion": "17"}, tmp_path / "service")
    service = tmp_path / "service"
    pom = (service / "pom.xml").read_text(encoding="utf-8")
    assert "<artifactId>demo-app</artifactId>" in pom
    assert "<maven.compiler.release>17</maven.compiler.release>" in pom
    sources = [str(p) for p in (service / "src" / "main" / "java").rglob("*.java")]
    done = subprocess.run(["javac", "--release", "17", "-d", str(tmp_path / "classes"), *sources],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "classes" / "dev" / "envforge" / "service" / "Application.class").is_file()
