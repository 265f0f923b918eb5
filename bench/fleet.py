"""Benchmark: N pull requests opened at once -> N environments Healthy, none lost or doubled.

    PREFECT_DATABASE=postgresql make demo && source .envforge/demo/env.sh
    .venv/bin/python bench/fleet.py --prs 20 [--write-docs]

A team's Monday morning: N signed GitHub `pull_request` `opened` deliveries sent at the same
time to `envforge webhook serve` (started here, mapping the repository to preview-app with
pr-1's parameters, as bench/headline.py does), run by the demo's worker under the concurrency
bounds scripts/prefect-local.sh sets (work-pool limit, tag limits on the database and image
steps). The clock of each environment stops when its Argo CD Application is Synced at the
commit that added it and Healthy. Then checked: each environment has exactly one directory on
the GitOps main, one commit that added it, one Application and one create run (nothing lost,
nothing doubled). Which database the Prefect server keeps its state in is read from
PostgreSQL itself (the runs are rows of the `prefect` database, or they are not). Every
environment is destroyed afterwards and waited for until gone. Last line:
`fleet: K/N healthy, p50 X s, p95 Y s, Prefect database: postgresql`.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import median, write_docs_section  # noqa: E402
from bench.cpu_profile import CpuProfile  # noqa: E402
from bench.pr_environments import (  # noqa: E402
    REPOSITORY,
    BenchError,
    Cluster,
    Demo,
    Timeline,
    WebhookServer,
    deliver,
    destroy_and_wait,
    environment_dirs,
    first_number,
    git,
    load_demo,
    read_run_times,
    real_parts,
    watch_until_healthy,
)

MAX_PRS = 40
#: per run: a base plus time per environment (the pool runs a few at once), capped
HEALTHY_TIMEOUT_S = (180.0, 30.0, 1500.0)
GONE_TIMEOUT_S = 600.0
DATABASES_GONE_TIMEOUT_S = 60.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of at least one value."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prs", type=int, default=5, help=f"pull requests at once "
                        f"(1..{MAX_PRS})")
    parser.add_argument("--write-docs", action="store_true",
                        help="write the figures into docs/benchmarks.md (section fleet-<N>)")
    args = parser.parse_args()
    prs = max(1, min(args.prs, MAX_PRS))
    try:
        report, last = run(prs)
    except BenchError as e:
        print(f"fleet: {e}", file=sys.stderr)
        return 1
    print(report)
    if args.write_docs:
        write_docs_section(f"fleet-{prs}", report)
    return 0 if last.startswith(f"fleet: {prs}/{prs} ") else 1


def run(prs: int) -> tuple[str, str]:
    import httpx

    demo = load_demo()
    cluster = Cluster(demo.kubeconfig)
    parts = real_parts(cluster.core, demo.kubeconfig)
    for part, what in parts.items():
        print(f"{part}: {what}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="envforge-fleet-"))
    server = WebhookServer(demo, workdir)
    base, per, cap = HEALTHY_TIMEOUT_S
    timeout = min(cap, base + per * prs)
    try:
        with httpx.Client(timeout=120) as http:
            start = first_number(demo)
            numbers = list(range(start, start + prs))
            timelines = [Timeline(f"pr-{n}") for n in numbers]

            def open_one(pair: tuple[int, Timeline]) -> None:
                number, t = pair
                t.sent, t.answered, t.flow_run_id = deliver(http, server, "opened", number,
                                                            demo)

            started = time.monotonic()
            try:
                with CpuProfile() as profile:  # where the cores go, deliveries to Healthy
                    with ThreadPoolExecutor(max_workers=prs) as pool:  # all at once
                        list(pool.map(open_one, zip(numbers, timelines, strict=True)))
                    print(f"{prs} deliveries answered in {time.monotonic() - started:.1f} s; "
                          f"waiting up to {timeout:g} s for Healthy", flush=True)
                    watch_until_healthy(demo, cluster, timelines, timeout)
                print(f"CPU during the burst:\n{profile.report()}", flush=True)
                read_run_times(timelines, timeout_s=300.0)
                problems = check_fleet(demo, cluster, timelines)
                database = prefect_database(timelines)
            finally:  # a failed run leaves nothing behind either
                leftovers = destroy_and_wait(http, server, demo, cluster, numbers,
                                             GONE_TIMEOUT_S)
                leftovers += leftover_databases(numbers, DATABASES_GONE_TIMEOUT_S)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return render(timelines, parts, prs, problems, leftovers, database, profile)


def check_fleet(demo: Demo, cluster: Cluster, timelines: list[Timeline]) -> list[str]:
    """Nothing lost, nothing doubled: per environment one directory on main, one commit that
    added its record, one Application, one create run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterTags,
    )

    problems: list[str] = []
    on_main = environment_dirs(demo)
    apps = cluster.applications()
    with get_client(sync_client=True) as prefect:
        for t in timelines:
            if on_main.count(t.name) != 1:
                problems.append(f"{t.name}: {on_main.count(t.name)} directories on main")
            added = git(demo.gitops, "log", "--format=%H", "--diff-filter=A", "main", "--",
                        f"environments/{t.name}/environment.yaml").split()
            if len(added) != 1:
                problems.append(f"{t.name}: added by {len(added)} commits")
            if t.name not in apps:
                problems.append(f"{t.name}: no Argo CD Application")
            runs = prefect.read_flow_runs(flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[f"github:{REPOSITORY}#{t.name[3:]}"]),
                name=FlowRunFilterName(like_=f"{t.name}-opened-")))
            if len(runs) != 1:
                problems.append(f"{t.name}: {len(runs)} create runs")
    extra = [n for n in apps if n.startswith("pr-") and n not in on_main]
    problems += [f"Application {n} without a directory on main" for n in extra]
    return problems


def leftover_databases(numbers: list[int], timeout_s: float) -> list[str]:
    """The environments' databases (``envforge_pr_<n>``, db:clone's name for pr-<n>) still on
    the demo's PostgreSQL once their environments are gone, or that a failed run left: named,
    after waiting up to ``timeout_s`` for the destroy runs to drop them."""
    import psycopg

    wanted = [f"envforge_pr_{n}" for n in numbers]
    deadline = time.monotonic() + timeout_s
    while True:
        with psycopg.connect(host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]),
                             user=os.environ.get("PGUSER", "postgres"), dbname="postgres",
                             connect_timeout=5) as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)",
                                (wanted,)).fetchall()
        left = sorted(f"database {name}" for (name,) in rows)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(1.0)


def prefect_database(timelines: list[Timeline]) -> str:
    """``postgresql`` when this run's flow runs are rows of the `prefect` database on the
    demo's PostgreSQL (scripts/prefect-local.sh with PREFECT_DATABASE=postgresql), else
    ``sqlite``: read from the database, not from a setting."""
    import psycopg

    ids = [t.flow_run_id for t in timelines]
    try:
        with psycopg.connect(host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]),
                             user=os.environ.get("PGUSER", "postgres"), dbname="prefect",
                             connect_timeout=5) as conn:
            found = conn.execute("SELECT count(*) FROM flow_run WHERE id::text = ANY(%s)",
                                 (ids,)).fetchone()
    except psycopg.Error:
        return "sqlite"
    return "postgresql" if found and found[0] == len(ids) else "sqlite"


def pool_limit(pool: str = "envforge-process") -> str:
    """The work pool's concurrency limit as the Prefect server has it (what the run had)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        limit = prefect.read_work_pool(pool).concurrency_limit
    return "unlimited" if limit is None else str(limit)


def render(timelines: list[Timeline], parts: dict[str, str], prs: int, problems: list[str],
           leftovers: list[str], database: str, profile: CpuProfile) -> tuple[str, str]:
    healthy = [t for t in timelines if t.healthy is not None and t.error is None]
    totals = [t.healthy - t.sent for t in healthy if t.healthy is not None]
    labels = list(Timeline("x").phases())

    def med(label: str) -> str:
        values = [v for t in healthy if (v := t.phases()[label]) is not None]
        return f"{median(values):.1f} s" if values else "n/a"

    last = (f"fleet: {len(healthy)}/{prs} healthy, p50 "
            + (f"{percentile(totals, 50):.1f} s, p95 {percentile(totals, 95):.1f} s"
               if totals else "n/a, p95 n/a") + f", Prefect database: {database}")
    lines = [
        f"### {prs} pull requests at once (`bench/fleet.py --prs {prs}`)",
        "",
        "    PREFECT_DATABASE=postgresql make demo && source .envforge/demo/env.sh",
        f"    .venv/bin/python bench/fleet.py --prs {prs} --write-docs",
        "",
        f"{prs} signed `opened` deliveries at the same moment -> {prs} preview-app "
        "environments Healthy on the demo's cluster (the application's commit pr-1 built: each "
        "environment's image is tagged from that one build, nothing rebuilt; database as "
        "pr-1's, secret from Vault), the Prefect server on "
        f"{database}, concurrency bounded by scripts/prefect-local.sh (work pool "
        f"{pool_limit()} flow runs; tags envforge-db and "
        "envforge-image 2 task runs each with PostgreSQL, unless set otherwise when the demo "
        "started). On "
        f"this machine ({os.cpu_count()} cores, shared). Parts in this run:",
        "",
        *(f"- {part}: {what}" for part, what in parts.items()),
        "",
        "| phase (median over the environments) | seconds |",
        "|---|---|",
        *(f"| {label} | {med(label)} |" for label in labels),
        "",
        "Opened -> Healthy per environment (s, sorted): " + ", ".join(
            f"{v:.1f}" for v in sorted(totals)) + ".",
        "",
        "Lost or doubled: " + ("; ".join(problems) if problems else
                               f"none ({prs} directories, {prs} adding commits, {prs} "
                               f"Applications, {prs} create runs)") + ".",
    ]
    failed = [t for t in timelines if t not in healthy]
    if failed:
        lines += ["", "Not healthy: " + "; ".join(f"{t.name}: {t.error}" for t in failed) + "."]
    lines += ["", f"Load average during the burst: {profile.load_range()}. CPU seconds "
              "from the first delivery to the last Healthy, by process group "
              "(bench/cpu_profile.py):", "", profile.report()]
    lines += ["", "Destroyed afterwards: " + (
        "all gone (directory, Application, namespace, database)" if not leftovers
        else f"NOT gone: {', '.join(leftovers)}") + ".", "", last]
    return "\n".join(lines), last


if __name__ == "__main__":
    raise SystemExit(main())
