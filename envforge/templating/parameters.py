"""A template's parameters: JSON Schema pages, validated with `jsonschema`, defaults applied.

Backstage lets ``spec.parameters`` be one schema or a list of pages (one form page each).
Values are checked against every page; ``ui:*`` keys are form hints and never reach the
validator. :func:`form_schema` folds the pages into the one object schema a Prefect run form
shows.

Bounded: a ``pattern`` (and ``patternProperties``) runs on RE2, a linear-time engine, never on
Python's backtracking ``re`` (``^(a+)+$`` over 27 characters blocked a server for 35 s); a
pattern RE2 cannot compile (backreferences, lookaround) is a schema problem that
``templates validate`` reports and a run refuses. Patterns are left out of the run form's
schema, so the Prefect server (which checks a form with ``re``) never runs one either: envforge
checks them when the run starts. Every string value is capped at
:data:`MAX_STRING_LENGTH` characters (ENVFORGE_MAX_STRING_LENGTH).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import re2
from jsonschema import Draft7Validator
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import extend, validator_for

from envforge.capabilities.budgets import check_value_depth
from envforge.core.sensitive import credential_paths, is_credential_name
from envforge.errors import ParameterError, TemplateError
from envforge.settings import load_settings
from envforge.templating.model import Template

_CONDITIONAL_KEYS = ("dependencies", "allOf", "anyOf", "oneOf", "if", "then", "else", "not")
#: Longest string a parameter value may be (characters); ENVFORGE_MAX_STRING_LENGTH overrides.
MAX_STRING_LENGTH = 10_000


@functools.lru_cache(maxsize=512)
def _re2(pattern: str) -> Any:
    return re2.compile(pattern)


def pattern_problem(pattern: Any) -> str | None:
    """Why RE2 cannot run ``pattern`` (None when it can)."""
    if not isinstance(pattern, str):
        return "a pattern must be a string"
    try:
        _re2(pattern)
    except re2.error as e:
        return (f"RE2 (linear time) cannot compile pattern {pattern[:80]!r} ({e}); "
                "backreferences and lookaround are not supported: rewrite it without them")
    return None


def _re2_pattern(validator: Validator, pattern: Any, instance: Any,
                 schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    if pattern_problem(pattern) is not None:
        yield ValidationError(f"pattern {str(pattern)[:80]!r} cannot run on RE2")
    elif not _re2(pattern).search(instance):
        yield ValidationError(f"{instance[:80]!r} does not match {pattern!r}")


def _re2_pattern_properties(validator: Any, patterns: Any, instance: Any,
                            schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        if pattern_problem(pattern) is not None:
            yield ValidationError(f"patternProperties {str(pattern)[:80]!r} cannot run on RE2")
            continue
        for key, value in instance.items():
            if _re2(pattern).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _bounded_validator(schema: Mapping[str, Any]) -> Any:
    """The draft's validator class with ``pattern``/``patternProperties`` on RE2."""
    cls = validator_for(schema, default=Draft7Validator)
    return extend(cls, {"pattern": _re2_pattern,  # type: ignore[no-untyped-call]
                        "patternProperties": _re2_pattern_properties})


def _patterns(schema: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(where, pattern) of every ``pattern`` and ``patternProperties`` key in ``schema``."""
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            where = f"{path}/{key}" if path else str(key)
            if key == "pattern":
                yield where, value
            elif key == "patternProperties" and isinstance(value, Mapping):
                for name in value:
                    yield f"{where}/{name}", name
            if key not in ("const", "enum", "default", "examples"):
                yield from _patterns(value, where)
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _patterns(value, f"{path}/{index}")


def _too_long(values: Any, limit: int, path: str = "") -> Iterator[tuple[str, int]]:
    if isinstance(values, str):
        if len(values) > limit:
            yield path or "(value)", len(values)
    elif isinstance(values, Mapping):
        for key, value in values.items():
            yield from _too_long(value, limit, f"{path}.{key}" if path else str(key))
    elif isinstance(values, list):
        for index, value in enumerate(values):
            yield from _too_long(value, limit, f"{path}[{index}]")


def max_string_length() -> int:
    """The longest string a parameter may hold (ENVFORGE_MAX_STRING_LENGTH, from the
    settings)."""
    return load_settings().budgets.max_string_length


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
        for where, pattern in _patterns(schema):
            problem = pattern_problem(pattern)
            if problem:
                problems.append(f"spec.parameters[{i}] at {where}: {problem}")
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
    # values from the API, a form or a run-template flow run come as JSON of any depth: the
    # defaults and the validator below recurse, so refuse deep ones first, in one line
    check_value_depth(f"template {template.name!r} parameters", values)
    result = dict(values)
    for page in pages(template):
        result = apply_defaults(strip_ui(page), result)
    violations: list[tuple[str, str]] = []
    limit = max_string_length()
    for path, length in _too_long(result, limit):
        violations.append((path, f"{length:,} characters, more than the {limit:,} allowed "
                                 "(ENVFORGE_MAX_STRING_LENGTH)"))
    if violations:  # refused before any pattern or format runs over it
        raise ParameterError(template.name, violations)
    secret = credential_paths(pages(template))
    for page in pages(template):
        schema = strip_ui(page)
        cls = _bounded_validator(schema)
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
            # no pattern: the Prefect server checks forms with Python's re (backtracking);
            # envforge checks patterns on RE2 when the run starts
            properties[name] = {**_without_patterns(prop), "position": len(properties)}
        required += [r for r in schema.get("required", []) if r not in required]
        extra = {k: _without_patterns(schema[k]) for k in _CONDITIONAL_KEYS if k in schema}
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


def _without_patterns(schema: Any) -> Any:
    """``schema`` without ``pattern`` / ``patternProperties`` at any depth."""
    if isinstance(schema, Mapping):
        return {k: _without_patterns(v) for k, v in schema.items()
                if k not in ("pattern", "patternProperties")}
    if isinstance(schema, list):
        return [_without_patterns(v) for v in schema]
    return schema


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
