"""Helpers shared by command modules: the template catalog and value parsing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from envforge.errors import ConfigurationError, TemplateError
from envforge.settings import load_settings
from envforge.templating.budget import load_budget
from envforge.templating.loader import TemplateCatalog
from envforge.templating.model import Template
from envforge.templating.parameters import pages, strip_ui
from envforge.templating.yamlsafe import YamlLimitError, load_yaml, read_limited


def catalog() -> TemplateCatalog:
    """The templates of ENVFORGE_TEMPLATES_PATH."""
    return TemplateCatalog(load_settings().paths.templates_path)


def require_prefect_api(purpose: str) -> str:
    """PREFECT_API_URL, or a one-line ConfigurationError saying what needs it and how to
    start a server."""
    url = load_settings().prefect.api_url
    if not url:
        raise ConfigurationError(
            f"PREFECT_API_URL is not set: {purpose} (start one with 'make server' or "
            "scripts/prefect-local.sh start, then export PREFECT_API_URL=http://127.0.0.1:4200/api)")
    return url


def parse_values(
    template: Template, assignments: Sequence[str], values_file: Path | None
) -> dict[str, Any]:
    """--values FILE first, then each --set key=value (dotted keys nest) on top of it.

    A --set value is kept as text where the schema says string; elsewhere it is read as YAML,
    so ``replicas=3`` is a number and ``debug=false`` a boolean.
    """
    values: dict[str, Any] = {}
    budget = load_budget()
    if sum(len(a) for a in assignments) > budget.values_max_bytes:
        raise TemplateError(f"--set values are larger than {budget.values_max_bytes:,} bytes "
                            "in all (ENVFORGE_VALUES_MAX_BYTES); put large content in a file "
                            "the template fetches")
    if values_file is not None:
        try:
            text = read_limited(values_file, budget.values_max_bytes,
                                "ENVFORGE_VALUES_MAX_BYTES")
            loaded = load_yaml(text, budget)
        except (OSError, UnicodeDecodeError, YamlLimitError, yaml.YAMLError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise TemplateError(f"--values {values_file}: cannot read it as YAML: {reason}") \
                from None
        if loaded is not None and not isinstance(loaded, dict):
            raise TemplateError(f"--values {values_file}: must hold a mapping of parameters")
        values.update(loaded or {})
    properties: dict[str, Any] = {}
    for page in pages(template):
        properties.update(strip_ui(page).get("properties") or {})
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise TemplateError(f"--set {assignment!r}: expected key=value")
        path = key.split(".")
        target = values
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise TemplateError(f"--set {assignment!r}: {part} is not an object")
        target[path[-1]] = _typed(raw, _property_at(properties, path), key)
    return values


def _property_at(properties: Mapping[str, Any], path: Sequence[str]) -> Mapping[str, Any]:
    prop: Mapping[str, Any] = {"properties": properties}
    for part in path:
        prop = (prop.get("properties") or {}).get(part) or {}
    return prop


def _typed(raw: str, prop: Mapping[str, Any], key: str = "value") -> Any:
    type_ = prop.get("type")
    if type_ == "string" or (isinstance(type_, list) and "string" in type_):
        return raw
    try:
        # within the YAML budget: a 5000-deep value is refused, not a RecursionError
        return load_yaml(raw) if raw else raw
    except YamlLimitError as e:
        raise TemplateError(f"--set {key}=...: the value is {e}; give a flatter value") \
            from None
    except yaml.YAMLError:
        return raw
