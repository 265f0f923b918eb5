"""`envforge templates list|show|validate|check`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envforge.cli.common import catalog
from envforge.cli.keep_files import (
    dry_run_keeping_files,
    empty_target,
    templates_path_in_front,
)
from envforge.errors import EnvforgeError, TemplateError
from envforge.run.validation import ValidationReport, validate_template_dir
from envforge.templating.loader import TEMPLATE_FILE, load_template
from envforge.templating.parameters import apply_defaults, describe_parameters, pages, strip_ui
from envforge.templating.samples import sample_values


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
    p.add_argument("--strict", action="store_true",
                   help="warnings (names a run would render empty) count as errors")
    p.set_defaults(handler=validate_templates)

    p = sub.add_parser("check", help="conformance table: validate and dry-run every template "
                       "found under the given folders (e.g. a Backstage collection)")
    p.add_argument("paths", nargs="+", metavar="DIR")
    p.add_argument("--output", choices=["text", "markdown", "json"], default="text")
    p.add_argument("--keep-files", type=Path, metavar="DIR",
                   help="write each template's dry-run workspace (every field filled) to "
                   "DIR/<template> (a new or empty folder)")
    p.set_defaults(handler=check_templates)


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
    targets = _targets(args.paths or [str(p) for p in catalog().search_paths])
    strict = bool(getattr(args, "strict", False))
    reports: list[ValidationReport] = [validate_template_dir(p) for p in targets]
    for report in reports:
        label = report.template or str(report.path)
        verdict = "ok  " if report.passes(strict) else "FAIL"
        note = f", {len(report.warnings)} warning(s)" if report.warnings else ""
        print(f"{verdict} {label} ({report.path}{note})")
        for problem in report.problems:
            print(f"     - error: {problem}")
        for warning in report.warnings:
            print(f"     - {'error' if strict else 'warning'}: {warning}")
    failed = sum(not r.passes(strict) for r in reports)
    print(f"{len(reports) - failed} valid, {failed} invalid"
          + (" (--strict: warnings count as errors)" if strict else ""))
    return 1 if failed else 0


def check_templates(args: argparse.Namespace) -> int:
    """Every template under the folders: validate verdict, dry-run verdicts, first problem.
    Relative fetch URLs may reach anywhere inside the folders given (their catalog root)."""
    import logging

    logging.getLogger("envforge").setLevel(logging.ERROR)  # the table reports what matters
    roots = [str(Path(p).resolve()) for p in args.paths]
    with templates_path_in_front(roots):
        targets = sorted({p.parent if p.is_file() else p for p in _targets(
            args.paths, recursive=True)})
        rows = [_check_row(path) for path in targets]
        if args.keep_files is not None:
            _keep_files(targets, empty_target(args.keep_files))
    if args.output == "json":
        print(json.dumps(rows, indent=2))
    else:
        headers = ["TEMPLATE", "VALIDATE", "WARNINGS", "DRY-RUN (REQUIRED)", "DRY-RUN (ALL)",
                   "UNKNOWN ACTIONS", "FIRST PROBLEM"]
        table = [(r["template"], r["validate"], str(r["warnings"]), r["dry_run_required"],
                  r["dry_run_all"], r["unknown_actions"] or "-", r["first_problem"])
                 for r in rows]
        if args.output == "markdown":
            print("| " + " | ".join(headers) + " |")
            print("|" + "---|" * len(headers))
            for row in table:
                print("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
        else:
            _table(headers, table)
    ok = sum(r["dry_run_required"] == "ok" and r["dry_run_all"] == "ok" for r in rows)
    valid = sum(r["validate"] == "ok" for r in rows)
    print(f"\n{len(rows)} template(s): {ok} dry-run ok with both value sets, "
          f"{valid} valid (no errors), "
          f"{sum(r['validate'] == 'ok' and not r['warnings'] for r in rows)} valid with --strict")
    return 0 if ok == len(rows) else 1


def _keep_files(targets: Sequence[Path], into: Path) -> None:
    """Each template's render-only dry run (every field filled), its files in into/<name>."""
    for path in targets:
        try:
            template = load_template(path)
            values = sample_values(template, "all")
            for page in pages(template):
                values = apply_defaults(strip_ui(page), values)
            _, files = dry_run_keeping_files(
                template, values, into / template.name, render_only=True, validate=False,
                environment={"name": "example", "type": "preview"})
            print(f"kept {len(files)} file(s) of {template.name} in {into / template.name}")
        except EnvforgeError as e:
            print(f"{path.name}: dry run failed ({str(e).splitlines()[0][:160]}); the files "
                  "it wrote before are kept")


def _check_row(path: Path) -> dict[str, Any]:
    report = validate_template_dir(path)
    def verdict(mode: str) -> str:
        if report.template is None:
            return "not loaded"
        return "ok" if report.dry_runs.get(mode) is None else "FAIL"
    unknown = [p for p in report.problems if "unknown action" in p]
    others = [p for p in report.problems if p not in unknown]
    first = (others or report.warnings or unknown or [""])[0]
    first = first.replace(str(path), ".")
    return {
        "template": report.template or path.name,
        "path": str(path),
        "validate": "ok" if report.ok else f"{len(report.problems)} error(s)",
        "warnings": len(report.warnings),
        "unknown_actions": ", ".join(sorted({p.split("unknown action ")[1].split(" ")[0]
                                             .strip("'") for p in unknown})),
        "dry_run_required": verdict("required"),
        "dry_run_all": verdict("all"),
        "first_problem": first if len(first) <= 160 else first[:157] + "...",
    }


def _targets(paths: Sequence[str], recursive: bool = False) -> list[Path]:
    targets: list[Path] = []
    skipped: list[Path] = []
    pattern = f"**/{TEMPLATE_FILE}" if recursive else f"*/{TEMPLATE_FILE}"
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise TemplateError(f"{raw}: no such file or directory")
        if path.is_file() or (path / TEMPLATE_FILE).is_file():
            targets.append(path)
        elif children := sorted(p.parent for p in path.glob(pattern) if _is_template(p)):
            targets += children
        else:
            skipped.append(path)
    for path in skipped:
        print(f"skip {path}: holds no {TEMPLATE_FILE}")
    if not targets:
        raise TemplateError("no templates found in: " + ", ".join(str(p) for p in skipped))
    return targets


def _is_template(file: Path) -> bool:
    """A template.yaml that declares a scaffolder Template (skeletons hold others)."""
    try:
        head = file.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    return "scaffolder.backstage.io" in head and "Template" in head


def _table(headers: list[str], rows: Sequence[tuple[str, ...]], indent: str = "") -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    for row in [tuple(headers), *rows]:
        print(indent + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False))
              .rstrip())
