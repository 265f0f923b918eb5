"""Benchmark: a pull request opened -> its environment Healthy on the cluster, through Argo CD.

    make demo && source .envforge/demo/env.sh
    .venv/bin/python bench/headline.py --reps 5 [--write-docs]

Against the services `make demo` started: envforge's webhook server (`envforge webhook serve`,
started here, mapping the repository to preview-app with pr-1's parameters: the demo's
application at the commit pr-1 built, the database cloned or seeded as pr-1's `database` says,
the secret from Vault) receives a signed GitHub `pull_request` `opened` delivery
for a new pull request; the demo's worker runs create-environment; the clock stops when the
environment's Argo CD Application is Synced at the commit that added it and Healthy. Phases:
webhook answered, run start (poll, fork of the warm runner), steps to the commit on the GitOps
main, Argo CD sync, rollout. Each environment is destroyed afterwards (a `closed` delivery) and
the next rep starts only once its directory, Application and namespace are gone, so reps are
independent. Prints which parts were real (Argo CD, the node, Vault). Last line:
`PR opened -> Healthy: median N s (reps ...)`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import median, write_docs_section  # noqa: E402
from bench.pr_environments import (  # noqa: E402
    BenchError,
    Cluster,
    Timeline,
    WebhookServer,
    deliver,
    destroy_and_wait,
    first_number,
    load_demo,
    read_run_times,
    real_parts,
    watch_until_healthy,
)

MAX_REPS = 20
HEALTHY_TIMEOUT_S = 300.0
GONE_TIMEOUT_S = 240.0
TARGET_S = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help=f"pull requests, one after the "
                        f"other (1..{MAX_REPS})")
    parser.add_argument("--database", choices=("clone", "seed", "none", "branch"),
                        help="the template's database parameter (default: pr-1's)")
    parser.add_argument("--write-docs", action="store_true",
                        help="write the figures into docs/benchmarks.md (section headline)")
    args = parser.parse_args()
    reps = max(1, min(args.reps, MAX_REPS))
    try:
        report = run(reps, args.database)
    except BenchError as e:
        print(f"headline: {e}", file=sys.stderr)
        return 1
    print(report)
    if args.write_docs:
        write_docs_section("headline", report)
    return 0


def run(reps: int, database: str | None) -> str:
    import httpx

    demo = load_demo(database=database)
    cluster = Cluster(demo.kubeconfig)
    parts = real_parts(cluster.core, demo.kubeconfig)
    for part, what in parts.items():
        print(f"{part}: {what}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="envforge-headline-"))
    server = WebhookServer(demo, workdir)
    timelines: list[Timeline] = []
    leftovers: list[str] = []
    try:
        with httpx.Client(timeout=60) as http:
            number = first_number(demo)
            for rep in range(reps):
                t = Timeline(f"pr-{number + rep}")
                t.sent, t.answered, t.flow_run_id = deliver(http, server, "opened",
                                                            number + rep, demo)
                watch_until_healthy(demo, cluster, [t], HEALTHY_TIMEOUT_S)
                read_run_times([t])
                timelines.append(t)
                total = t.phases()["PR opened -> Healthy"]
                print(f"rep {rep + 1}/{reps} {t.name}: " + (
                    f"{total:.1f} s" if total is not None else f"FAILED: {t.error}"),
                    flush=True)
                leftovers += destroy_and_wait(http, server, demo, cluster, [number + rep],
                                              GONE_TIMEOUT_S)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return render(timelines, parts, reps, demo.parameters.get("database"), leftovers)


def render(timelines: list[Timeline], parts: dict[str, str], reps: int,
           database: object, leftovers: list[str]) -> str:
    healthy = [t for t in timelines if t.healthy is not None]
    labels = list(Timeline("x").phases())

    def med(label: str) -> str:
        values = [v for t in healthy if (v := t.phases()[label]) is not None]
        return f"{median(values):.1f} s" if values else "n/a"

    step_names = sorted({name for t in healthy for name in t.steps})
    lines = [
        "## Pull request to a working environment (`bench/headline.py`)",
        "",
        "    make demo && source .envforge/demo/env.sh",
        f"    .venv/bin/python bench/headline.py --reps {reps} --write-docs",
        "",
        "A signed GitHub `pull_request` `opened` delivery to `envforge webhook serve` -> the "
        "preview-app environment Healthy on the demo's cluster: the demo application's commit "
        "that pr-1 built (preview-app names the image after the environment; image:build tags "
        "it from pr-1's build of that commit, envforge/builds in the registry: nothing "
        "rebuilt), database "
        f"`{database}`, secret from Vault; the demo's warm runner and "
        "process worker (1 s poll) run create-environment; Argo CD syncs the commit. Each "
        "environment is destroyed (a `closed` delivery) and gone before the next. On this "
        f"machine ({os.cpu_count()} cores, shared). Parts in this run:",
        "",
        *(f"- {part}: {what}" for part, what in parts.items()),
        "",
        "| phase | median |",
        "|---|---|",
        *(f"| {label} | {med(label)} |" for label in labels),
        "",
        "Per rep (s): " + "; ".join(
            f"{t.name} " + ("/".join(f"{v:.1f}" if v is not None else "-"
                                     for v in t.phases().values()) if t.error is None
                            else f"failed ({t.error})") for t in timelines) + " (phases in "
        "the order of the table).",
        "",
        "Steps (task runs, median s): " + ", ".join(
            f"{name} {median([t.steps[name] for t in healthy if name in t.steps]):.2f}"
            for name in step_names) + ".",
    ]
    if leftovers:
        lines += ["", f"Not gone after destroy: {', '.join(leftovers)}."]
    values = [v for t in healthy if (v := t.phases()["PR opened -> Healthy"]) is not None]
    reps_text = ", ".join(f"{v:.1f}" for v in values)
    verdict = "" if not values else (" (target < 30 s: met)" if median(values) < TARGET_S
                                     else " (target < 30 s: NOT met)")
    lines += ["", (f"PR opened -> Healthy: median {median(values):.1f} s "
                   f"(reps {reps_text}; {len(values)}/{len(timelines)} healthy){verdict}"
                   if values else f"PR opened -> Healthy: median n/a (reps: 0/{len(timelines)} "
                   "healthy)")]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
