"""`envforge vars explain ENV`: every effective variable of an environment, its value (secrets
masked, shown as their Vault reference) and the scope that won.

Until environments are recorded (``environments/<name>/environment.yaml``), the inputs come
from options: the template (``--template``, its ``spec.variables``), the project variables file
(``--variables-file``), the environment type (``--type``) and per-environment overrides
(``--set NAME=VALUE``); built-ins from the run can be given with ``--builtin NAME=VALUE``.
Nothing is fetched from Vault.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envforge.cli.common import catalog
from envforge.errors import VariableError
from envforge.secrets.variables import (
    ENVIRONMENT_TYPES,
    ResolvedVariable,
    VariableSources,
    load_project_file,
    resolve_variables,
)


def add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser("vars", help="explain an environment's variables")
    sub = parser.add_subparsers(dest="vars_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("explain", help="effective variables, masked values and winning scopes")
    p.add_argument("environment", metavar="ENV", help="environment name")
    p.add_argument("--template", metavar="NAME|PATH", help="template whose spec.variables apply")
    p.add_argument("--variables-file", type=Path, metavar="FILE",
                   help="project variables file (variables/types/environments)")
    p.add_argument("--type", dest="environment_type", default="preview",
                   choices=ENVIRONMENT_TYPES, help="environment type (default preview)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="NAME=VALUE", help="per-environment override (repeatable)")
    p.add_argument("--builtin", dest="builtins", action="append", default=[],
                   metavar="NAME=VALUE", help="built-in value from the run (repeatable)")
    p.add_argument("--sensitive", action="append", default=["DATABASE_URL"], metavar="NAME",
                   help="built-in to treat as secret (DATABASE_URL always is)")
    p.add_argument("--shadowed", action="store_true",
                   help="also show the definitions each winner overrode")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(handler=explain_variables)


def _assignments(items: Sequence[str], option: str) -> dict[str, str]:
    found = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise VariableError(f"{option} {item!r}: expected NAME=VALUE")
        found[name.strip()] = value
    return found


def sources_from_args(args: argparse.Namespace) -> VariableSources:
    """The variable sources an `explain` invocation describes."""
    template_vars: dict[str, Any] = {}
    template_source = "template spec.variables"
    if args.template:
        template = catalog().load(args.template)
        template_vars = (template.spec.model_extra or {}).get("variables") or {}
        template_source = f"{template.file} spec.variables"
    project: dict[str, Any] = {}
    project_source = "project variables file"
    if args.variables_file is not None:
        project, project_source = load_project_file(args.variables_file), str(args.variables_file)
    builtins = {"ENV_NAME": args.environment, "ENV_TYPE": args.environment_type}
    builtins |= _assignments(args.builtins, "--builtin")
    return VariableSources(
        builtins=builtins, sensitive_builtins=frozenset(args.sensitive),
        template=template_vars, project=project, environment_type=args.environment_type,
        environment_name=args.environment, overrides=_assignments(args.overrides, "--set"),
        template_source=template_source, project_source=project_source)


def describe(variable: ResolvedVariable) -> dict[str, Any]:
    return {
        "name": variable.name, "value": variable.masked(), "secret": variable.secret,
        "scope": variable.winner.scope.label, "source": variable.winner.source,
        "shadowed": [{"scope": d.scope.label, "source": d.source,
                      "value": "<masked>" if d.sensitive else d.raw}
                     for d in variable.shadowed],
    }


def explain_variables(args: argparse.Namespace) -> int:
    resolved = resolve_variables(sources_from_args(args))
    rows = [describe(v) for v in resolved.values()]
    if args.output == "json":
        print(json.dumps({"environment": args.environment, "type": args.environment_type,
                          "variables": rows}, indent=2))
        return 0
    print(f"environment {args.environment} (type {args.environment_type}): "
          f"{len(rows)} variable(s); narrower scope wins: built-in < template < project < "
          "type < environment")
    width = max([len(r["name"]) for r in rows] + [4])
    value_width = min(48, max([len(r["value"]) for r in rows] + [5]))
    print(f"{'NAME':<{width}}  {'VALUE':<{value_width}}  {'SCOPE':<11}  SOURCE")
    for row in rows:
        marker = " (secret)" if row["secret"] else ""
        print(f"{row['name']:<{width}}  {row['value']:<{value_width}}  {row['scope']:<11}  "
              f"{row['source']}{marker}")
        if args.shadowed:
            for lost in row["shadowed"]:
                print(f"{'':<{width}}    overrode {lost['scope']}: {lost['value']} "
                      f"({lost['source']})")
    return 0
