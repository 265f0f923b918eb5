from pathlib import Path

import pytest

from envforge.errors import ParameterError
from envforge.templating.loader import load_template
from envforge.templating.model import Template
from envforge.templating.parameters import (
    describe_parameters,
    form_schema,
    schema_problems,
    validate_parameters,
)
from tests.helpers import write_template

PAGES = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: svc, title: A service, description: Makes a service}
spec:
  type: service
  parameters:
    - title: Service
      required: [name]
      properties:
        name:
          type: string
          title: Name
          pattern: '^[a-z][-a-z0-9]*$'
          ui:autofocus: true
        port: {type: integer, default: 8080, minimum: 1024, maximum: 65535}
    - title: Deployment
      properties:
        tier:
          type: string
          enum: [small, large]
          default: small
          ui:widget: radio
        resources:
          type: object
          properties:
            cpu: {type: string, default: 100m}
            memory: {type: string}
"""


@pytest.fixture
def template(tmp_path: Path) -> Template:
    return load_template(write_template(tmp_path / "svc", PAGES))


def test_defaults_are_applied_at_every_depth(template: Template) -> None:
    values = validate_parameters(template, {"name": "shop", "resources": {"memory": "1Gi"}})
    assert values == {
        "name": "shop", "port": 8080, "tier": "small",
        "resources": {"cpu": "100m", "memory": "1Gi"},
    }


def test_every_violation_is_listed_with_its_json_path(template: Template) -> None:
    with pytest.raises(ParameterError) as info:
        validate_parameters(template, {"name": "Bad Name", "port": 80, "tier": "huge",
                                       "resources": {"cpu": 1}})
    paths = [path for path, _ in info.value.violations]
    assert paths == ["$.name", "$.port", "$.resources.cpu", "$.tier"]
    assert "'huge' is not one of ['small', 'large']" in str(info.value)


def test_missing_required_parameter(template: Template) -> None:
    with pytest.raises(ParameterError, match="'name' is a required property"):
        validate_parameters(template, {})


def test_ui_keys_never_reach_the_validator_or_the_form(template: Template) -> None:
    schema = form_schema(template)
    assert "ui:autofocus" not in str(schema) and "ui:widget" not in str(schema)
    assert list(schema["properties"]) == ["name", "port", "tier", "resources"]
    assert [p["position"] for p in schema["properties"].values()] == [0, 1, 2, 3]
    assert schema["required"] == ["name"]
    assert schema["title"] == "A service" and schema["description"] == "Makes a service"
    assert schema["properties"]["tier"]["enum"] == ["small", "large"]


def test_a_single_schema_object_works_like_one_page(tmp_path: Path) -> None:
    t = load_template(write_template(tmp_path / "one", """
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {name: one}
        spec:
          type: service
          parameters:
            required: [n]
            properties: {n: {type: integer, default: 2}}
        """))
    assert validate_parameters(t, {}) == {"n": 2}
    assert [p.name for p in describe_parameters(t)] == ["n"]


def test_invalid_schemas_are_found(tmp_path: Path) -> None:
    t = load_template(write_template(tmp_path / "bad", """
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {name: bad}
        spec:
          type: service
          parameters:
            - properties: {n: {type: integr}}
        """))
    problems = schema_problems(t)
    assert len(problems) == 1 and "spec.parameters[0]" in problems[0]


def test_describe_parameters(template: Template) -> None:
    rows = {p.name: p for p in describe_parameters(template)}
    assert rows["name"].required and rows["name"].type == "string"
    assert rows["port"].default == 8080 and not rows["port"].required
    assert rows["tier"].enum == ["small", "large"] and rows["tier"].page == "Deployment"
