"""Variables with scopes: built-in < template < project < environment type < environment.

A narrower scope wins. A value is a literal, text with ``${{ vars.NAME }}`` references to other
variables (cycles are refused, naming the cycle), or a secret reference
(``vault:kv/app/db#password@3``). A variable is secret when it is a secret reference, refers
(directly or not) to a secret variable, or is a built-in marked sensitive (a database URL with
its password). Resolution never fetches anything: it yields *parts* (literal text, secret
references, sensitive text) that delivery turns into a Secret, an ExternalSecret template or a
ConfigMap, and that ``envforge vars explain`` shows masked.

Project variables file (YAML)::

    variables:    {LOG_LEVEL: info, DB_PASSWORD: "vault:kv/app/db#password"}
    types:        {preview: {LOG_LEVEL: debug}, staging: {REPLICAS: "2"}}
    environments: {pr-42: {LOG_LEVEL: trace}}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import yaml

from envforge.errors import VariableCycleError, VariableError
from envforge.secrets.references import SecretReference, looks_like_reference, parse_reference

ENVIRONMENT_TYPES = ("preview", "development", "staging")
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VARS_REFERENCE = re.compile(r"\$\{\{\s*vars\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
ANY_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
FILE_KEYS = ("variables", "types", "environments")


class Scope(IntEnum):
    """Where a definition came from; a higher scope overrides a lower one."""

    BUILTIN = 0
    TEMPLATE = 1
    PROJECT = 2
    TYPE = 3
    ENVIRONMENT = 4

    @property
    def label(self) -> str:
        return self.name.lower().replace("builtin", "built-in")


@dataclass(frozen=True)
class Definition:
    """One definition of one variable in one scope (``source`` says which file and key)."""

    name: str
    raw: str
    scope: Scope
    source: str
    sensitive: bool = False

    def __repr__(self) -> str:  # a sensitive built-in's raw text is a value: never shown
        raw = "<masked>" if self.sensitive else repr(self.raw)
        return (f"Definition(name={self.name!r}, raw={raw}, scope={self.scope.label}, "
                f"source={self.source!r})")


@dataclass(frozen=True)
class SensitiveText:
    """Text that must be treated as secret but does not come from Vault (a built-in)."""

    text: str = field(repr=False)
    origin: str = ""


Part = str | SecretReference | SensitiveText


@dataclass(frozen=True)
class ResolvedVariable:
    """The winning definition of a variable, expanded into parts; ``shadowed`` lost to it."""

    name: str
    winner: Definition
    parts: tuple[Part, ...]
    shadowed: tuple[Definition, ...] = ()

    @property
    def secret(self) -> bool:
        return any(not isinstance(p, str) for p in self.parts)

    @property
    def references(self) -> tuple[SecretReference, ...]:
        return tuple(p for p in self.parts if isinstance(p, SecretReference))

    @property
    def from_vault_only(self) -> bool:
        """Secret, and every secret part comes from Vault (deliverable by ESO)."""
        return self.secret and not any(isinstance(p, SensitiveText) for p in self.parts)

    def literal_value(self) -> str:
        """The value of a non-secret variable; refuses secret ones."""
        if self.secret:
            raise VariableError(f"variable {self.name!r} is secret; it has no literal value")
        return "".join(p for p in self.parts if isinstance(p, str))

    def value(self, fetch: Callable[[SecretReference], str]) -> str:
        """The value with secret references fetched through ``fetch``."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, SecretReference):
                out.append(fetch(part))
            elif isinstance(part, SensitiveText):
                out.append(part.text)
            else:
                out.append(part)
        return "".join(out)

    def masked(self) -> str:
        """For display: literal text kept, secret parts shown as their reference or masked."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, SecretReference):
                out.append(f"<{part}>")
            elif isinstance(part, SensitiveText):
                out.append(f"<sensitive {part.origin}>")
            else:
                out.append(part)
        return "".join(out)


@dataclass
class VariableSources:
    """Everything that defines variables for one environment, lowest scope first."""

    builtins: Mapping[str, str] = field(default_factory=dict)
    sensitive_builtins: frozenset[str] = frozenset()
    template: Mapping[str, Any] = field(default_factory=dict)
    project: Mapping[str, Any] = field(default_factory=dict)
    environment_type: str = "preview"
    environment_name: str = ""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    template_source: str = "template.yaml spec.variables"
    project_source: str = "project variables file"


def load_project_file(path: Path | str) -> dict[str, Any]:
    """Read and check the shape of a project variables file (see the module docstring)."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise VariableError(f"{file}: cannot read the variables file ({e.strerror})") from e
    except yaml.YAMLError as e:
        raise VariableError(f"{file}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict) or set(data) - set(FILE_KEYS):
        raise VariableError(
            f"{file}: a variables file is a mapping with the keys {', '.join(FILE_KEYS)}; "
            f"found {sorted(data) if isinstance(data, dict) else type(data).__name__}"
        )
    for key in ("types", "environments"):
        for sub, values in (data.get(key) or {}).items():
            if not isinstance(values, dict):
                raise VariableError(f"{file}: {key}.{sub} must be a mapping of NAME: value")
    unknown_types = set(data.get("types") or {}) - set(ENVIRONMENT_TYPES)
    if unknown_types:
        raise VariableError(
            f"{file}: unknown environment type(s) {sorted(unknown_types)} under types; "
            f"use {', '.join(ENVIRONMENT_TYPES)}"
        )
    return data


def collect_definitions(sources: VariableSources) -> dict[str, list[Definition]]:
    """Every definition of every variable, lowest scope first."""
    if sources.environment_type not in ENVIRONMENT_TYPES:
        raise VariableError(
            f"environment type {sources.environment_type!r} is unknown; use "
            f"{', '.join(ENVIRONMENT_TYPES)}"
        )
    project = sources.project
    layers: list[tuple[Scope, str, Mapping[str, Any]]] = [
        (Scope.BUILTIN, "run", sources.builtins),
        (Scope.TEMPLATE, sources.template_source, sources.template),
        (Scope.PROJECT, f"{sources.project_source} variables", project.get("variables") or {}),
        (Scope.TYPE, f"{sources.project_source} types.{sources.environment_type}",
         (project.get("types") or {}).get(sources.environment_type) or {}),
        (Scope.ENVIRONMENT, f"{sources.project_source} environments.{sources.environment_name}",
         (project.get("environments") or {}).get(sources.environment_name) or {}),
        (Scope.ENVIRONMENT, "environment overrides", sources.overrides),
    ]
    found: dict[str, list[Definition]] = {}
    for scope, source, values in layers:
        if not isinstance(values, Mapping):
            raise VariableError(f"{source}: must be a mapping of NAME: value")
        for name, raw in values.items():
            found.setdefault(str(name), []).append(
                Definition(str(name), _scalar(raw, f"{source}.{name}"), scope, source,
                           sensitive=scope is Scope.BUILTIN and name in sources.sensitive_builtins)
            )
    for name in found:
        if not VARIABLE_NAME.match(name):
            where = found[name][-1].source
            raise VariableError(
                f"{where}: variable name {name!r} must be letters, digits and '_', "
                "not starting with a digit"
            )
    return found


def resolve_variables(sources: VariableSources) -> dict[str, ResolvedVariable]:
    """The effective variables, sorted by name; references expanded, cycles refused."""
    definitions = collect_definitions(sources)
    winners = {name: defs[-1] for name, defs in definitions.items()}
    resolved: dict[str, ResolvedVariable] = {}

    def expand(name: str, stack: list[str]) -> tuple[Part, ...]:
        if name in stack:
            raise VariableCycleError([*stack[stack.index(name):], name])
        if name in resolved:
            return resolved[name].parts
        winner = winners[name]
        parts = _parse_value(winner, lambda ref: _expand_ref(ref, name, stack))
        resolved[name] = ResolvedVariable(name, winner, parts, tuple(definitions[name][:-1]))
        return parts

    def _expand_ref(ref: str, referrer: str, stack: list[str]) -> tuple[Part, ...]:
        if ref not in winners:
            where = winners[referrer].source
            raise VariableError(
                f"{where}.{referrer}: refers to ${{{{ vars.{ref} }}}}, which no scope defines; "
                f"define {ref} or fix the name (defined: {', '.join(sorted(winners))})"
            )
        return expand(ref, [*stack, referrer])

    for name in sorted(winners):
        expand(name, [])
    return dict(sorted(resolved.items()))


def _parse_value(
    definition: Definition, expand: Callable[[str], tuple[Part, ...]]
) -> tuple[Part, ...]:
    where = f"{definition.source}.{definition.name}"
    raw = definition.raw
    if looks_like_reference(raw):
        return (parse_reference(raw, where),)
    if definition.sensitive:
        return (SensitiveText(raw, definition.name),)
    parts: list[Part] = []
    position = 0
    for match in ANY_EXPRESSION.finditer(raw):
        reference = VARS_REFERENCE.fullmatch(match.group(0))
        if reference is None:
            raise VariableError(
                f"{where}: {match.group(0)!r} is not allowed in a variable value; only "
                "${{ vars.NAME }} references to other variables are"
            )
        if match.start() > position:
            parts.append(raw[position:match.start()])
        parts.extend(expand(reference["name"]))
        position = match.end()
    if position < len(raw) or not parts:
        parts.append(raw[position:])
    return _merge_text(parts)


def _merge_text(parts: list[Part]) -> tuple[Part, ...]:
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + part
        else:
            merged.append(part)
    return tuple(merged)


def _scalar(raw: Any, where: str) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str | int | float):
        return str(raw)
    raise VariableError(
        f"{where}: a variable value must be a string, number or boolean, "
        f"not {type(raw).__name__}"
    )
