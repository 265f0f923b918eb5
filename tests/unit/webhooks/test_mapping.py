from __future__ import annotations

from pathlib import Path

import pytest

from envforge.errors import TemplateMappingError
from envforge.webhooks.mapping import TemplateMapping


def test_short_and_long_forms_default_and_case(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(
        "default: python-service\n"
        "repositories:\n"
        "  Acme/Web:\n"
        "    template: node-service\n"
        "    parameters: {replicas: 1}\n"
        "    ttl: 3d\n"
        "  acme/billing: java-service\n"
    )
    mapping = TemplateMapping.load(path)
    web = mapping.template_for("acme/web")
    assert web is not None
    assert (web.template, web.parameters, web.ttl) == ("node-service", {"replicas": 1}, "3d")
    billing = mapping.template_for("ACME/billing")
    assert billing is not None and billing.template == "java-service"
    other = mapping.template_for("acme/unknown")
    assert other is not None and other.template == "python-service"


def test_without_default_unknown_repositories_get_nothing() -> None:
    mapping = TemplateMapping.from_data({"repositories": {"a/b": "python-service"}})
    assert mapping.template_for("c/d") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repositories:\n  a/b: {template: x, colour: blue}\n", r"repositories\.a/b\.colour"),
        ("repositories:\n  a/b: {parameters: {}}\n", r"repositories\.a/b\.template"),
        ("- a\n- b\n", "expected a mapping"),
        ("repositories: [a]\n", "repositories"),
        ("default: {template: ''}\n", r"default\.template"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_malformed_files_name_the_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(TemplateMappingError, match=expected) as info:
        TemplateMapping.load(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateMappingError, match="cannot read it"):
        TemplateMapping.load(tmp_path / "nope.yaml")
