"""Differential run over template collections: each template dry-run by envforge (render only,
every fetch:* for real, as ``templates check``) and by the oracle (nunjucks running the same
steps the way Backstage's NunjucksWorkflowRunner and fetch:template do), with the same
parameter values and the same outputs for the steps that were faked; the two workspaces are
compared file by file, byte for byte.

    python -m tests.backstage_oracle.collections DIR... [--mode all|required] [--markdown]
    python -m tests.backstage_oracle.collections DIR... --table   # one row per collection

Each DIR is a catalog root (ENVFORGE_TEMPLATES_PATH), searched at any depth for template.yaml
and for other YAML files holding a v1beta3 Template.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envforge.errors import EnvforgeError, StepFailedError
from envforge.run.runner import SecretRef, TemplateRun
from envforge.templating.loader import load_template
from envforge.templating.parameters import apply_defaults, pages, strip_ui
from envforge.templating.samples import Mode, sample_values
from tests.backstage_oracle.client import Oracle, OracleError

_SECRET = re.compile(r"secrets\.([A-Za-z_]\w*)")
#: actions that write files without nunjucks: the oracle cannot say what Backstage writes
NOT_NUNJUCKS = {"fetch:cookiecutter", "fetch:rails"}
FETCH_ACTIONS = {"fetch:template", "fetch:plain", "fetch:template:file", "fetch:plain:file"}


@dataclass
class Comparison:
    template: str
    envforge: str  # "ok" or the first problem
    oracle: str
    files: int = 0
    identical: bool = False
    difference: str = ""

    @property
    def verdict(self) -> str:
        if self.envforge != "ok" or self.oracle != "ok":
            return "not compared"
        return "identical" if self.identical else "DIFFERENT"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _first_difference(mine: dict[str, bytes], theirs: dict[str, bytes]) -> str:
    for name in sorted(set(mine) | set(theirs)):
        if name not in mine:
            return f"{name}: only Backstage writes it"
        if name not in theirs:
            return f"{name}: only envforge writes it"
        if mine[name] != theirs[name]:
            a, b = mine[name], theirs[name]
            at = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]),
                      min(len(a), len(b)))
            return (f"{name} at byte {at}: envforge {a[max(0, at - 20): at + 30]!r} / "
                    f"Backstage {b[max(0, at - 20): at + 30]!r}")
    return ""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def compare_template(oracle: Oracle, template_path: Path, mode: Mode = "all") -> Comparison:
    """``template_path``: a template's folder (its template.yaml) or its file of any name."""
    template_file = template_path / "template.yaml" if template_path.is_dir() else template_path
    try:
        template = load_template(template_file)
    except EnvforgeError as e:
        return Comparison(template_file.parent.name, f"load: {e}", "-")
    values = sample_values(template, mode)
    for page in pages(template):
        values = apply_defaults(strip_ui(page), values)
    secret_names = sorted(set(_SECRET.findall(json.dumps(template.model_dump()))))
    row = Comparison(template.name, "ok", "ok")
    other = sorted({s.action for s in template.spec.steps} & NOT_NUNJUCKS)
    if other:
        row.oracle = f"{', '.join(other)} renders with cookiecutter/rails, not nunjucks"
        return row
    run: TemplateRun | None = None
    with tempfile.TemporaryDirectory(prefix="envforge-diff-") as tmp:
        mine_dir, theirs_dir = Path(tmp) / "envforge", Path(tmp) / "backstage"
        theirs_dir.mkdir()
        try:
            run = TemplateRun(template, values, dry_run=True, validate=False, render_only=True,
                              environment={"name": "example", "type": "preview"},
                              secret_names=secret_names)
            try:
                run.run()
            except StepFailedError as e:
                row.envforge = f"step {e.step_id!r}: {e.reason}"[:160]
            mine_dir.mkdir()
            for name, data in _files(run.workspace).items():
                (mine_dir / name).parent.mkdir(parents=True, exist_ok=True)
                (mine_dir / name).write_bytes(data)
            actions = {s.id: s.action for s in template.spec.steps}
            outputs = {sid: _jsonable(out) for sid, out in run.outputs.items()
                       if actions.get(sid) not in FETCH_ACTIONS}
            user = _jsonable(run.user)
        except EnvforgeError as e:
            row.envforge = str(e).splitlines()[0][:160]
            return row
        finally:
            if run is not None:
                run.close()
        if row.envforge != "ok":
            return row
        try:
            oracle.ask({"op": "runTemplate", "template": str(template_file.resolve()),
                        "workspace": str(theirs_dir), "parameters": _jsonable(values),
                        "user": user, "outputs": outputs,
                        "secrets": {n: str(SecretRef(n)) for n in secret_names}})
        except OracleError as e:
            row.oracle = str(e)[:160]
            return row
        mine, theirs = _files(mine_dir), _files(theirs_dir)
        row.files = len(theirs)
        row.difference = _first_difference(mine, theirs)
        row.identical = not row.difference
    return row


_API_VERSION = re.compile(r"^apiVersion:\s*['\"]?scaffolder\.backstage\.io/v1beta3\b", re.M)
_KIND = re.compile(r"^kind:\s*['\"]?Template\b", re.M)


def template_dirs(roots: list[Path]) -> list[Path]:
    """Every v1beta3 Template file under the roots: ``template.yaml`` or any other ``.yaml`` /
    ``.yml`` file whose document is one (collections name them ``microservice-template.yaml``,
    ``bs-tf-s3-config.yaml``, ...); a folder's ``template.yaml`` is given as its folder."""
    found: list[Path] = []
    for root in roots:
        for path in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
            if "node_modules" in path.parts or ".git" in path.parts or not path.is_file():
                continue
            try:
                head = path.read_text(encoding="utf-8", errors="replace")[:4000]
            except OSError:
                continue
            if path.name == "template.yaml":
                if _KIND.search(head) or not head.strip():  # not a catalog Location, say
                    found.append(path.parent)
            elif _API_VERSION.search(head) and _KIND.search(head):
                found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--mode", choices=["all", "required"], default="all")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--table", action="store_true",
                        help="with --mode both value sets: one docs/backstage.md row per DIR")
    args = parser.parse_args(argv)
    if args.table:
        return print_table(args.roots)
    os.environ["ENVFORGE_TEMPLATES_PATH"] = os.pathsep.join(str(r.resolve())
                                                            for r in args.roots)
    oracle = Oracle()
    rows = [compare_template(oracle, d, args.mode) for d in template_dirs(args.roots)]
    oracle.close()
    if args.markdown:
        print("| TEMPLATE | ENVFORGE DRY RUN | FILES | BACKSTAGE (NUNJUCKS) | FIRST DIFFERENCE |")
        print("|---|---|---|---|---|")
        for r in rows:
            detail = (r.difference or (r.envforge if r.envforge != "ok" else
                                       ("" if r.oracle == "ok" else f"Backstage: {r.oracle}"))
                      ).replace("|", "\\|")
            print(f"| {r.template} | {r.envforge if r.envforge == 'ok' else 'FAIL'} | "
                  f"{r.files} | {r.verdict} | {detail[:150] or '-'} |")
    else:
        for r in rows:
            detail = r.difference or (r.envforge if r.envforge != "ok" else
                                      ("" if r.oracle == "ok" else f"Backstage: {r.oracle}"))
            print(f"{r.template:40} {r.verdict:13} files={r.files:<4} {detail}")
    compared = [r for r in rows if r.verdict != "not compared"]
    same = sum(r.identical for r in compared)
    print(f"{len(rows)} template(s): {len(compared)} dry-run by both, {same} identical, "
          f"{len(compared) - same} different, {len(rows) - len(compared)} not compared")
    return 0 if same == len(compared) else 1


def compare_collection(oracle: Oracle, root: Path, mode: Mode) -> list[Comparison]:
    """Every template of one collection, with ``root`` as its catalog root."""
    previous = os.environ.get("ENVFORGE_TEMPLATES_PATH")
    os.environ["ENVFORGE_TEMPLATES_PATH"] = str(root.resolve())
    try:
        return [compare_template(oracle, d, mode) for d in template_dirs([root])]
    finally:
        if previous is None:
            os.environ.pop("ENVFORGE_TEMPLATES_PATH", None)
        else:
            os.environ["ENVFORGE_TEMPLATES_PATH"] = previous


def print_table(roots: list[Path]) -> int:
    """docs/backstage.md's table: per collection, both value sets (required in brackets when
    they differ), then every template not identical with its reason."""
    oracle = Oracle()
    notes: list[str] = []
    different = 0
    print("| Collection | Templates | Dry-run by both | Identical | Different | Not compared |")
    print("|---|---|---|---|---|---|")
    for root in roots:
        counts = []
        for mode in ("all", "required"):
            rows = compare_collection(oracle, root, mode)
            compared = [r for r in rows if r.verdict != "not compared"]
            same = sum(r.identical for r in compared)
            counts.append((len(rows), len(compared), same, len(compared) - same,
                           len(rows) - len(compared)))
            different += len(compared) - same
            notes += [f"{root.name} ({mode}) {r.template}: {r.verdict}: "
                      f"{r.difference or (r.envforge if r.envforge != 'ok' else r.oracle)}"[:220]
                      for r in rows if not r.identical]
        (total, both, same, diff, skipped), req = counts[0], counts[1]

        def cell(i: int, value: int, req: tuple[int, ...] = req) -> str:
            return f"{value} ({req[i]})" if req[i] != value else str(value)

        print(f"| {root.name.replace('+', '/')} | {total} | {cell(1, both)} | {cell(2, same)} | "
              f"{cell(3, diff)} | {cell(4, skipped)} |")
    oracle.close()
    print()
    for note in notes:
        print(f"- {note}")
    return 0 if different == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
