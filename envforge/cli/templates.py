"""`envforge templates list|show|validate`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envforge.cli.common import catalog
from envforge.errors import EnvforgeError, TemplateError
from envforge.templating.loader import TEMPLATE_FILE
from envforge.templating.parameters import describe_parameters
from envforge.validation import ValidationReport, validate_template_dir


def add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser("templates", help="list, show and validate templates")
    sub = parser.add_subparsers(dest="templates_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("list", help="list the available templates")
    p.set_defaults(handler=list_templates)

    p = sub.add_parser("show", help="a template's parameters, steps and outputs")
    p.add_argument("template", metavar="NAME|PATH")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(handler=show_template)

    p = sub.add_parser("validate", help="check templates without running anything")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="template directories (or directories of them); default: all")
    p.set_defaults(handler=validate_templates)


def list_templates(args: argparse.Namespace) -> int:
    cat = catalog()
    rows = []
    for directory in cat.template_dirs():
        try:
            t = cat.load(str(directory))
            rows.append((t.name, t.spec.type, t.metadata.title or "", ", ".join(t.metadata.tags)))
        except EnvforgeError as e:
            rows.append((directory.name, "?", f"BROKEN: {e}", ""))
    if not rows:
        print("no templates found in " + ", ".join(str(p) for p in cat.search_paths))
        return 0
    _table(["NAME", "TYPE", "TITLE", "TAGS"], rows)
    return 0


def show_template(args: argparse.Namespace) -> int:
    t = catalog().load(args.template)
    params = describe_parameters(t)
    if args.output == "json":
        print(json.dumps({
            "name": t.name, "title": t.metadata.title, "description": t.metadata.description,
            "owner": t.spec.owner, "type": t.spec.type, "tags": t.metadata.tags,
            "parameters": [p.__dict__ for p in params],
            "steps": [{"id": s.id, "name": s.display_name, "action": s.action}
                      for s in t.spec.steps],
        }, indent=2, default=str))
        return 0
    print(f"{t.name}: {t.metadata.title or ''}")
    if t.metadata.description:
        print(f"  {t.metadata.description.strip()}")
    print(f"  owner: {t.spec.owner or '-'}   type: {t.spec.type}   "
          f"tags: {', '.join(t.metadata.tags) or '-'}   path: {t.directory}")
    print("\nparameters:")
    _table(
        ["NAME", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"],
        [(p.name, p.type + (f" {p.enum}" if p.enum else ""), "yes" if p.required else "no",
          "-" if p.default is None else json.dumps(p.default),
          p.description or p.title or "") for p in params],
        indent="  ",
    )
    print("\nsteps:")
    _table(["ID", "ACTION", "NAME", "IF"],
           [(s.id, s.action, s.display_name, "" if s.if_ is None else str(s.if_))
            for s in t.spec.steps], indent="  ")
    if t.spec.output.links:
        print("\noutput links: " + ", ".join(link.title or link.url or "?"
                                             for link in t.spec.output.links))
    return 0


def validate_templates(args: argparse.Namespace) -> int:
    targets: list[Path] = []
    skipped: list[Path] = []
    for raw in args.paths or [str(p) for p in catalog().search_paths]:
        path = Path(raw)
        if not path.exists():
            raise TemplateError(f"{raw}: no such file or directory")
        if path.is_file() or (path / TEMPLATE_FILE).is_file():
            targets.append(path)
        elif children := sorted(p.parent for p in path.glob(f"*/{TEMPLATE_FILE}")):
            targets += children
        else:
            skipped.append(path)
    for path in skipped:
        print(f"skip {path}: holds no {TEMPLATE_FILE}")
    if not targets:
        raise TemplateError("no templates found to validate in: "
                            + ", ".join(str(p) for p in skipped))
    reports: list[ValidationReport] = [validate_template_dir(p) for p in targets]
    for report in reports:
        label = report.template or str(report.path)
        if report.ok:
            print(f"ok   {label} ({report.path})")
        else:
            print(f"FAIL {label} ({report.path})")
            for problem in report.problems:
                print(f"     - {problem}")
    failed = sum(not r.ok for r in reports)
    print(f"{len(reports) - failed} valid, {failed} invalid")
    return 1 if failed else 0


def _table(headers: list[str], rows: Sequence[tuple[str, ...]], indent: str = "") -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    for row in [tuple(headers), *rows]:
        print(indent + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False))
              .rstrip())
