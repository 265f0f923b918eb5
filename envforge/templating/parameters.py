"""A template's parameters: JSON Schema pages, validated with `jsonschema`, defaults applied.

Backstage lets ``spec.parameters`` be one schema or a list of pages (one form page each).
Values are checked against every page; ``ui:*`` keys are form hints and never reach the
validator. :func:`form_schema` folds the pages into the one object schema a Prefect run form
shows.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.validators import validator_for

from envforge.errors import ParameterError, TemplateError
from envforge.sensitive import credential_paths, is_credential_name
from envforge.templating.model import Template

_CONDITIONAL_KEYS = ("dependencies", "allOf", "anyOf", "oneOf", "if", "then", "else", "not")


def pages(template: Template) -> list[dict[str, Any]]:
    params = template.spec.parameters
    return [params] if isinstance(params, dict) else list(params)


def strip_ui(schema: Any) -> Any:
    """The schema without form hints (``ui:*`` keys), at every depth."""
    if isinstance(schema, Mapping):
        return {k: strip_ui(v) for k, v in schema.items() if not str(k).startswith("ui:")}
    if isinstance(schema, list):
        return [strip_ui(v) for v in schema]
    return schema


def schema_problems(template: Template) -> list[str]:
    """Pages that are not valid JSON Schema (checked against the draft each page declares)."""
    problems = []
    for i, page in enumerate(pages(template)):
        schema = strip_ui(page)
        cls = validator_for(schema, default=Draft7Validator)
        try:
            cls.check_schema(schema)
        except SchemaError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "(page root)"
            problems.append(f"spec.parameters[{i}] at {where}: {e.message}")
    return problems


def apply_defaults(schema: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Fill in `default`s of absent properties, descending into objects."""
    result = dict(values)
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, Mapping):
            continue
        if name not in result and "default" in prop:
            result[name] = copy.deepcopy(prop["default"])
        if prop.get("type") == "object" and isinstance(result.get(name), dict):
            result[name] = apply_defaults(prop, result[name])
    return result


def validate_parameters(template: Template, values: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults applied, then every violation of every page collected into one error.
    A page that is not valid JSON Schema (``required: name`` instead of a list, an unknown
    ``type``) is a one-line TemplateError, not a traceback from the validator."""
    broken = schema_problems(template)
    if broken:
        hint = (" (write required as a list: required: [name])"
                if "is not of type 'array'" in broken[0] and "required" in broken[0] else "")
        raise TemplateError(f"template {template.name!r}: {broken[0]}{hint}; fix its "
                            "template.yaml ('envforge templates validate' lists every problem)")
    result = dict(values)
    for page in pages(template):
        result = apply_defaults(strip_ui(page), result)
    violations: list[tuple[str, str]] = []
    secret = credential_paths(pages(template))
    for page in pages(template):
        schema = strip_ui(page)
        cls = validator_for(schema, default=Draft7Validator)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        for error in sorted(validator.iter_errors(result), key=lambda e: list(e.absolute_path)):
            violations.append((error.json_path, _message(error, secret)))
    if violations:
        raise ParameterError(template.name, _unique(violations))
    return result


def _message(error: ValidationError, secret: set[str]) -> str:
    """jsonschema's message, except for a credential field: its messages quote the value
    ("'hunter2' is too short"), so those say which rule failed without it."""
    path = [str(p) for p in error.absolute_path]
    if not path or not (".".join(path) in secret or any(is_credential_name(p) for p in path)):
        return error.message
    rule = error.validator_value
    shown = "" if isinstance(rule, (dict, list)) else f" {rule}"
    return f"the value (not shown: a credential) does not satisfy {error.validator}{shown}"


def _unique(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(items))


def form_schema(template: Template) -> dict[str, Any]:
    """One object schema for a run form: pages' properties in order (``position`` set as
    Prefect's own schemas do), required names merged, per-page conditions kept in ``allOf``."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    conditions: list[dict[str, Any]] = []
    for page in pages(template):
        schema = strip_ui(page)
        for name, prop in (schema.get("properties") or {}).items():
            properties[name] = {**prop, "position": len(properties)}
        required += [r for r in schema.get("required", []) if r not in required]
        extra = {k: schema[k] for k in _CONDITIONAL_KEYS if k in schema}
        if extra:
            conditions.append(extra)
    merged: dict[str, Any] = {
        "title": template.metadata.title or template.name,
        "type": "object",
        "properties": properties,
        "required": required,
    }
    if template.metadata.description:
        merged["description"] = template.metadata.description
    if conditions:
        merged["allOf"] = conditions
    return merged


@dataclass(frozen=True)
class ParameterInfo:
    """One parameter as `envforge templates show` lists it."""

    name: str
    type: str
    required: bool
    default: Any
    title: str | None
    description: str | None
    enum: list[Any] | None
    page: str | None


def describe_parameters(template: Template) -> list[ParameterInfo]:
    rows = []
    for page in pages(template):
        required = set(page.get("required", []))
        for name, prop in (page.get("properties") or {}).items():
            type_ = prop.get("type", "any")
            if type_ == "array" and isinstance(prop.get("items"), Mapping):
                type_ = f"array of {prop['items'].get('type', 'any')}"
            rows.append(
                ParameterInfo(
                    name=name,
                    type=type_ if isinstance(type_, str) else "|".join(type_),
                    required=name in required,
                    default=prop.get("default"),
                    title=prop.get("title"),
                    description=prop.get("description"),
                    enum=prop.get("enum"),
                    page=page.get("title"),
                )
            )
    return rows


def example_values(template: Template) -> dict[str, Any]:
    """Plausible values for every parameter (defaults, first enum value, typed stand-ins),
    used to render step inputs when validating a template without running it."""
    values: dict[str, Any] = {}
    for page in pages(template):
        for name, prop in (strip_ui(page).get("properties") or {}).items():
            values.setdefault(name, _example(name, prop))
    return values


def _example(name: str, prop: Mapping[str, Any]) -> Any:
    if "default" in prop:
        return copy.deepcopy(prop["default"])
    if prop.get("enum"):
        return prop["enum"][0]
    if "const" in prop:
        return prop["const"]
    type_ = prop.get("type")
    if isinstance(type_, list):
        type_ = next((t for t in type_ if t != "null"), "string")
    if type_ == "boolean":
        return False
    if type_ in ("integer", "number"):
        return prop.get("minimum", 1)
    if type_ == "array":
        return []
    if type_ == "object":
        return {k: _example(k, v) for k, v in (prop.get("properties") or {}).items()}
    return f"example-{name}".lower()
