"""The per-template environment form: its schema, the deployment spec, and a submission split
back into an environment request (credentials as Vault references, read at run time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envforge.core.config import PROJECT_ROOT
from envforge.environments.deployments import (
    ENVIRONMENT_ENTRYPOINT,
    environment_deployment_spec,
    flow_run_command,
)
from envforge.environments.forms import (
    ENVIRONMENT_TYPES,
    credential_fields,
    environment_form_schema,
    environment_signature,
    resolve_credential_references,
    submission_from_form,
)
from envforge.errors import SecretReferenceError, TemplateError
from envforge.secrets.references import SecretReference
from envforge.templating.loader import TemplateCatalog
from envforge.templating.model import Template

ENV_FIELDS = ["name", "environment_type", "ttl", "owner", "source"]


def _project_template(name: str) -> Template:
    return TemplateCatalog([PROJECT_ROOT / "templates"]).load(name)


def _template(properties: dict[str, Any], required: list[str] | None = None) -> Template:
    return Template.model_validate({
        "apiVersion": "scaffolder.backstage.io/v1beta3", "kind": "Template",
        "metadata": {"name": "with-db", "title": "Service with a database"},
        "spec": {"type": "service", "parameters": [
            {"title": "Service", "required": required or [], "properties": properties}]}})


def _all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _all_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _all_keys(v)}
    return set()


def test_preview_app_form_is_environment_fields_then_template_pages() -> None:
    template = _project_template("preview-app")
    schema = environment_form_schema(template)
    props = schema["properties"]
    names = list(props)
    assert names[:5] == ENV_FIELDS
    assert names[5:] == ["repoUrl", "ref", "stack", "imageRegistry", "registryTls", "port",
                         "database", "snapshot", "sourceDatabase", "databaseImage",
                         "databaseHost",
                         "databasePort", "databaseUser", "databaseLogin", "vaultSecrets",
                         "refreshData",
                         "replicas"]
    assert [p["position"] for p in props.values()] == list(range(len(props)))
    assert schema["required"] == ["name", "repoUrl"]
    assert props["environment_type"]["enum"] == list(ENVIRONMENT_TYPES)
    assert props["environment_type"]["default"] == "preview"
    assert props["stack"]["enum"] == ["auto", "python", "node", "java-maven", "static"]
    assert props["stack"]["default"] == "auto" and props["stack"]["title"] == "Stack"
    assert props["source"]["type"] == "object"
    assert list(props["source"]["properties"]) == ["repository", "branch", "pullRequest",
                                                   "commit"]
    # Every field has a title and a concrete type: no raw dict editor, no "type None"
    for name, prop in props.items():
        assert prop.get("title"), name
        assert prop.get("type") in ("string", "integer", "boolean", "object"), name
    assert not {"anyOf", "$ref", "definitions"} & _all_keys(schema)
    assert "null" not in json.dumps(schema)
    # a boolean called vaultSecrets is not a credential: no Vault connection field
    assert "vault_block" not in props and credential_fields(template) == []


def test_template_name_and_owner_are_the_environments_own_fields() -> None:
    props = environment_form_schema(_project_template("python-service"))["properties"]
    assert list(props).count("name") == 1 and list(props).count("owner") == 1
    assert props["owner"]["default"] == "group:platform"  # the template's default kept
    assert "template's" in props["owner"]["description"]


def test_credential_field_becomes_a_vault_reference() -> None:
    template = _template({
        "name": {"type": "string", "title": "Name"},
        "dbPassword": {"type": "string", "title": "Database password", "ui:field": "Secret"},
        "apiToken": {"type": "string", "title": "API token"},
        "replicas": {"type": "integer", "default": 1, "title": "Replicas"},
    }, required=["name", "dbPassword"])
    props = environment_form_schema(template)["properties"]
    assert credential_fields(template) == ["dbPassword", "apiToken"]
    for field in ("dbPassword", "apiToken"):
        assert props[field]["title"].endswith("(Vault reference)")
        assert props[field]["pattern"].startswith("^vault:")
        assert "ui:field" not in props[field]
    assert list(props)[-1] == "vault_block"
    assert environment_form_schema(template)["required"] == ["name", "dbPassword"]


def test_form_field_names_that_clash_are_refused() -> None:
    template = _template({"ttl": {"type": "string", "title": "TTL"}})
    with pytest.raises(TemplateError, match=r"with-db.*ttl.*rename"):
        environment_form_schema(template)


def test_signature_matches_the_form() -> None:
    template = _project_template("preview-app")
    signature = environment_signature(template)
    assert list(signature.parameters) == list(environment_form_schema(template)["properties"])
    assert signature.parameters["name"].default is signature.empty
    assert signature.parameters["stack"].default == "auto"


def test_submission_splits_environment_fields_and_parameters() -> None:
    template = _project_template("python-service")
    submission = submission_from_form(template, {
        "name": "pr-7", "environment_type": "development", "ttl": "3d", "owner": "group:a",
        "source": {"repository": "https://git.example/acme/shop.git", "pullRequest": 7,
                   "branch": None},
        "port": 9000, "description": None})
    assert (submission.name, submission.environment_type, submission.ttl) == (
        "pr-7", "development", "3d")
    assert submission.source == {"repository": "https://git.example/acme/shop.git",
                                 "pullRequest": 7}
    # owner and name are also the template's parameters; empty fields are left out
    assert submission.parameters == {"name": "pr-7", "owner": "group:a", "port": 9000}


class _FakeReader:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.read_refs: list[str] = []
        self.forgotten = False

    def read(self, ref: SecretReference) -> str:
        self.read_refs.append(str(ref))
        return self.values[str(ref)]

    def forget(self) -> None:
        self.forgotten = True


class _FakeSource:
    def __init__(self, reader: _FakeReader) -> None:
        self.reader = reader
        self.asked: list[str | None] = []

    def vault_reader(self, name: str | None) -> _FakeReader:
        self.asked.append(name)
        return self.reader


def test_credential_references_are_read_through_the_named_vault_connection() -> None:
    template = _template({"name": {"type": "string"},
                          "dbPassword": {"type": "string", "format": "password"}})
    submission = submission_from_form(template, {
        "name": "pr-1", "dbPassword": "vault:kv/with-db/db#password", "vault_block": "team"})
    assert "dbPassword" not in submission.parameters
    assert submission.credential_references == {"dbPassword": "vault:kv/with-db/db#password"}
    reader = _FakeReader({"vault:kv/with-db/db#password": "s3cr3t-value"})
    source = _FakeSource(reader)
    values = resolve_credential_references(submission, source)  # type: ignore[arg-type]
    assert values == {"name": "pr-1", "dbPassword": "s3cr3t-value"}
    assert source.asked == ["team"] and reader.forgotten


def test_a_value_instead_of_a_reference_is_refused_without_echoing_it() -> None:
    template = _template({"dbPassword": {"type": "string", "format": "password"}})
    submission = submission_from_form(template, {"name": "pr-1", "dbPassword": "hunter2-pw"})
    with pytest.raises(SecretReferenceError, match="dbPassword") as caught:
        resolve_credential_references(submission, _FakeSource(_FakeReader({})))  # type: ignore[arg-type]
    assert "not a Vault reference" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_environment_deployment_spec(tmp_path: Path) -> None:
    template = _project_template("preview-app")
    spec = environment_deployment_spec(template, "templates/preview-app", "pool", tmp_path)
    assert spec["name"] == "preview-app"
    assert spec["entrypoint"] == ENVIRONMENT_ENTRYPOINT
    assert spec["enforce_parameter_schema"] is True
    assert spec["parameter_openapi_schema"] == environment_form_schema(template)
    assert spec["job_variables"] == {"env": {"ENVFORGE_TEMPLATE": "templates/preview-app"},
                                    "command": flow_run_command()}
    assert spec["work_pool_name"] == "pool"
