"""Values generated from a template's own parameter schema, to dry-run it without a caller.

Two sets, because a real run sees both: ``all`` fills every field (the first branch of
``oneOf``/``dependencies`` included), ``required`` only what the schema requires (optional
fields left empty, as a user who skips them leaves them). Form hints matter: a RepoUrlPicker
field gets ``github.com?owner=example&repo=example`` so ``parseRepoUrl`` works, an entity
picker ``group:default/example``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

from envforge.templating.model import Template
from envforge.templating.parameters import pages

Mode = Literal["all", "required"]

_PICKER_VALUES = {
    "RepoUrlPicker": "github.com?owner=example&repo=example",
    "OwnerPicker": "group:default/example",
    "EntityPicker": "component:default/example",
    "OwnedEntityPicker": "component:default/example",
    "MyGroupsPicker": "group:default/example",
    "EntityNamePicker": "example",
}


def sample_values(template: Template, mode: Mode) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for page in pages(template):
        _fill_object(page, values, mode)
    return values


def _fill_object(schema: Mapping[str, Any], into: dict[str, Any], mode: Mode) -> None:
    required = set(schema.get("required") or [])
    props = schema.get("properties") or {}
    for name, prop in props.items():
        if not isinstance(prop, Mapping) or name in into:
            continue
        if mode == "all" or name in required:
            into[name] = _sample(name, prop, mode)
    # conditional parts: the first branch of each, as a form would show by default
    deps = schema.get("dependencies") or {}
    for name, dep in deps.items():
        if name in into and isinstance(dep, Mapping):
            branches = dep.get("oneOf") or dep.get("anyOf") or [dep]
            branch = _matching_branch(branches, into) or branches[0]
            if isinstance(branch, Mapping):
                _fill_object({**branch, "properties": {
                    k: v for k, v in (branch.get("properties") or {}).items()
                    if k != name}}, into, mode)
    for key in ("allOf",):
        for part in schema.get(key) or []:
            if isinstance(part, Mapping):
                _fill_object(part, into, mode)
                for sub in ("then",):
                    if isinstance(part.get(sub), Mapping):
                        _fill_object(part[sub], into, mode)


def _matching_branch(branches: list[Any], values: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for branch in branches:
        if not isinstance(branch, Mapping):
            continue
        props = branch.get("properties") or {}
        ok = True
        for key, prop in props.items():
            if key in values and isinstance(prop, Mapping):
                if "enum" in prop and values[key] not in prop["enum"]:
                    ok = False
                if "const" in prop and values[key] != prop["const"]:
                    ok = False
        if ok:
            return branch
    return None


def _sample(name: str, prop: Mapping[str, Any], mode: Mode) -> Any:
    if "default" in prop:
        return copy.deepcopy(prop["default"])
    if "const" in prop:
        return prop["const"]
    if prop.get("enum"):
        return prop["enum"][0]
    field = prop.get("ui:field")
    if isinstance(field, str) and field in _PICKER_VALUES:
        return _PICKER_VALUES[field]
    type_ = prop.get("type")
    if isinstance(type_, list):
        type_ = next((t for t in type_ if t != "null"), "string")
    if type_ is None and isinstance(prop.get("properties"), Mapping):
        type_ = "object"
    if type_ == "boolean":
        return mode == "all"
    if type_ in ("integer", "number"):
        return prop.get("minimum", 1)
    if type_ == "array":
        items = prop.get("items")
        if isinstance(items, Mapping) and mode == "all":
            if items.get("enum"):
                return [items["enum"][0]]
            return [_sample(f"{name}-item", items, mode)]
        return []
    if type_ == "object":
        out: dict[str, Any] = {}
        _fill_object(prop, out, mode)
        return out
    fmt = prop.get("format")
    if fmt == "uri" or fmt == "url":
        return "https://example.com/example"
    if fmt == "email":
        return "someone@example.com"
    minimum = int(prop.get("minLength") or 0)
    text = f"example-{name}".lower().replace("_", "-")
    return text + "x" * max(0, minimum - len(text))
