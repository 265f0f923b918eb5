"""Time `envforge env upgrade --all` over 50 environments.

    .venv/bin/python bench/upgrade.py --environments 50 --reps 3 --write-docs

A throwaway ENVFORGE_HOME (embedded bare GitOps repository, real git over file://) and a copy
of templates/python-service. The environments are created once through the template (as
`envforge env create` does); then each repetition changes the template's Deployment
(revisionHistoryLimit) and times, in one process, the same call `env upgrade --all` makes:
a dry run (render and diff all), the upgrade (render, diff, validate, one commit and push per
environment), and an upgrade with nothing left to change (render and compare only).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])
from bench.common import ROOT, median, time_call, write_docs_section  # noqa: E402

SECTION = "upgrade"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environments", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="envforge-bench-upgrade-") as tmp:
        templates = Path(tmp) / "templates"
        shutil.copytree(ROOT / "templates" / "python-service", templates / "python-service")
        os.environ["ENVFORGE_HOME"] = str(Path(tmp) / "home")
        os.environ["ENVFORGE_TEMPLATES_PATH"] = str(templates)
        os.environ.pop("ENVFORGE_GITOPS_URL", None)
        os.environ.setdefault("ENVFORGE_GIT_LOCK_TIMEOUT", "600")

        from envforge.cli import main as cli
        from envforge.core.config import load_settings
        from envforge.environments.upgrade import UpgradeReport, upgrade_environments
        from envforge.gitops.repository import open_store
        from envforge.templating.loader import TemplateCatalog

        names = [f"pr-{i}" for i in range(1, args.environments + 1)]
        with contextlib.redirect_stdout(io.StringIO()):
            _, create_s = time_call(lambda: [cli(["env", "create", n, "--template",
                                                  "python-service"]) for n in names])
        print(f"created {len(names)} environments in {create_s:.1f} s")
        deployment = templates / "python-service/skeleton/manifests/deployment.yaml"
        catalog = TemplateCatalog(load_settings().templates_path)

        def upgrade(dry_run: bool) -> UpgradeReport:
            with open_store() as store:
                return upgrade_environments(store, catalog, all_environments=True,
                                            dry_run=dry_run, run_id="bench")

        timings: dict[str, list[float]] = {"dry": [], "upgrade": [], "unchanged": []}
        for rep in range(args.reps):
            text = deployment.read_text()
            limit = f"revisionHistoryLimit: {10 + rep}"
            deployment.write_text(text.replace(
                next(line.strip() for line in text.splitlines()
                     if "revisionHistoryLimit" in line), limit))
            for key, dry in (("dry", True), ("upgrade", False), ("unchanged", False)):
                report, took = time_call(lambda dry=dry: upgrade(dry))  # type: ignore[misc]
                expected = {"dry": "would-upgrade", "upgrade": "upgraded",
                            "unchanged": "unchanged"}[key]
                got = len(report.having(expected))  # type: ignore[arg-type]
                if got != len(names) or report.failed:
                    raise SystemExit(f"rep {rep} {key}: {got}/{len(names)} {expected}, "
                                     f"failed: {[o.error for o in report.failed][:2]}")
                timings[key].append(took)
                print(f"rep {rep + 1}: {key:9} {took:6.2f} s")

    n = len(names)
    rows = [("dry run (render + diff all)", timings["dry"]),
            ("upgrade (render, diff, validate, commit + push each)", timings["upgrade"]),
            ("upgrade with nothing to change (no commit)", timings["unchanged"])]
    lines = [
        "## Upgrading environments (`bench/upgrade.py`)",
        "",
        f"Command: `.venv/bin/python bench/upgrade.py --environments {n} --reps {args.reps} "
        "--write-docs`; one process, embedded bare repository over file://, python-service; "
        f"{n} environments, the template's Deployment changed before each repetition; "
        f"medians of {args.reps} runs. Machine: 2 cores shared with other work (1-min load "
        f"average {os.getloadavg()[0]:.1f} at the end).",
        "",
        f"| `env upgrade --all`, {n} environments | median | per environment | runs (min-max) |",
        "|---|---:|---:|---:|",
        *[f"| {label} | {median(runs):.1f} s | {median(runs) / n * 1000:.0f} ms | "
          f"{min(runs):.1f}-{max(runs):.1f} s |" for label, runs in rows],
        "",
        "Per environment, the time is the template's render-only run (fetch:template into a "
        "fresh workspace) plus the re-render and validation of its GitOps files; the upgrade "
        "adds one commit and one push per environment (one commit each, by design).",
    ]
    body = "\n".join(lines)
    print(body)
    if args.write_docs:
        write_docs_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
