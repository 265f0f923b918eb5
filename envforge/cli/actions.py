"""`envforge actions list|show`: the actions a template's steps can call, with each one's input
and output schema and an example step, read from the action registry (nothing runs)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml

from envforge.actions.base import Action
from envforge.actions.registry import ActionRegistry, default_registry


def add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser("actions", help="list the actions steps can use, or show one")
    sub = parser.add_subparsers(dest="actions_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("list", help="every action: id, dry-run support, description")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(handler=list_actions)
    p = sub.add_parser("show", help="one action: its input and output schema and an example")
    p.add_argument("action", metavar="ACTION_ID", help="e.g. fetch:template")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(handler=show_action)


def describe_action(action: Action[Any, Any]) -> dict[str, Any]:
    """What `actions show` prints: id, description, behaviour, schemas and examples."""
    return {
        "id": action.id,
        "description": action.description,
        "supportsDryRun": action.supports_dry_run,
        "retries": action.retries,
        "gitBound": action.git_bound,
        "schema": {
            "input": action.input_model.model_json_schema(by_alias=True),
            "output": action.output_model.model_json_schema(by_alias=True),
        },
        "examples": list(action.examples),
    }


def list_actions(args: argparse.Namespace, registry: ActionRegistry | None = None) -> int:
    registry = registry or default_registry()
    if args.output == "json":
        print(json.dumps([{"id": a.id, "description": a.description,
                           "supportsDryRun": a.supports_dry_run} for a in registry], indent=2))
        return 0
    width = max((len(a.id) for a in registry), default=0)
    for action in registry:
        mark = "dry-run" if action.supports_dry_run else "       "
        print(f"{action.id:<{width}}  {mark}  {action.description}")
    print("\n'envforge actions show ACTION_ID' shows an action's input, output and an example")
    return 0


def show_action(args: argparse.Namespace, registry: ActionRegistry | None = None) -> int:
    registry = registry or default_registry()
    described = describe_action(registry.get(args.action))  # UnknownActionError lists the ids
    if args.output == "json":
        print(json.dumps(described, indent=2))
        return 0
    print(f"{described['id']}: {described['description']}")
    print(f"dry run: {'supported' if described['supportsDryRun'] else 'output faked'}; "
          f"retries: {described['retries']}"
          + ("; input ends up in Git (no secret references)" if described["gitBound"] else ""))
    for side in ("input", "output"):
        print(f"\n{side}:")
        print(_fields_text(described["schema"][side]))
    examples = described["examples"]
    print("\nexample step:" if examples else "\nexample step: (none declared)")
    for example in examples[:1]:
        print(_indent(yaml.safe_dump({"steps": [example]}, sort_keys=False).rstrip()))
    return 0


def _fields_text(schema: dict[str, Any]) -> str:
    """One line per property: name, type, required/default, description."""
    properties: dict[str, Any] = schema.get("properties") or {}
    if not properties:
        return "  (none)"
    required = set(schema.get("required") or [])
    lines = []
    for name, prop in properties.items():
        kind = _type_text(prop)
        flag = "required" if name in required else (
            f"default {json.dumps(prop['default'])}" if "default" in prop else "optional")
        description = prop.get("description") or ""
        lines.append(f"  {name:<22} {kind:<14} {flag:<16} {description}".rstrip())
    return "\n".join(lines)


def _type_text(prop: dict[str, Any]) -> str:
    if "type" in prop:
        return str(prop["type"])
    if "anyOf" in prop:
        return "|".join(_type_text(p) for p in prop["anyOf"])
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "enum" in prop:
        return "enum"
    return "any"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
