"""Benchmark: creating one environment (render, validate, secret guard, commit, push) in a
GitOps repository holding 10 environments and in one holding 500, measured side by side
(alternating) in one process, and the wall time of 20 concurrent creates against one remote
from 20 caches (as 20 machines would).

    .venv/bin/python bench/gitops.py --reps 25 [--write-docs]

Real git throughout: bare remotes over file:// in a temporary directory. The repositories are
pre-filled with real rendered environments (one commit), then each machine's cache is warmed
by one create, as a worker's would be. No image build or database.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# sys.path[0] is bench/, where bench/secrets.py used to shadow the standard library's secrets.
sys.path[0] = str(ROOT)

from bench.common import median, write_docs_section  # noqa: E402
from envforge.gitops.record import EnvironmentSpec  # noqa: E402
from envforge.gitops.render import render_environment  # noqa: E402
from envforge.gitops.repository import open_store  # noqa: E402
from envforge.gitops.settings import GitOpsSettings  # noqa: E402
from envforge.gitops.store import EnvironmentStore  # noqa: E402
from envforge.run.runner import TemplateRun  # noqa: E402
from envforge.templating.loader import load_template  # noqa: E402

GIT_ENV = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]
SETTINGS = GitOpsSettings()


def git(*args: str, cwd: Path | None = None) -> str:
    """Run git with a bench identity; its stdout."""
    return subprocess.run(["git", *GIT_ENV, *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def python_service_manifests(into: Path) -> Path:
    """The python-service template's manifests, rendered by its own fetch:template step."""
    template = load_template(ROOT / "templates" / "python-service")
    run = TemplateRun(template, {"name": "bench-app"}, dry_run=True)
    try:
        run.run()
        shutil.copytree(run.workspace / "service" / "manifests", into)
    finally:
        run.close()
    return into


def spec() -> EnvironmentSpec:
    """The environment spec every measured create uses."""
    return EnvironmentSpec(template="python-service", owner="group:bench",
                           parameters={"name": "bench-app", "replicas": 1})


def prefilled_remote(base: Path, count: int, manifests: Path) -> Path:
    """A bare remote holding ``count`` rendered environments (pushed as one commit)."""
    bare = base / f"remote-{count}.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    work = base / f"fill-{count}"
    git("clone", "--quiet", bare.as_uri(), str(work))
    with open_store(url=bare.as_uri(), cache_root=base / "unused", settings=SETTINGS) as store:
        for i in range(count):
            record = store.new_record(f"env-{i:04d}", spec(), "48h")
            rendered = render_environment(record, manifests, store.repo_url, "main", SETTINGS)
            for rel, text in rendered.files.items():
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                (work / rel).write_text(text)
    git("add", "--all", cwd=work)
    git("commit", "--quiet", "-m", f"{count} environments", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    shutil.rmtree(work)
    return bare


def timed_create(store: EnvironmentStore, name: str, manifests: Path) -> float:
    """Seconds to create (and publish) one environment in ``store``."""
    started = time.perf_counter()
    record = store.new_record(name, spec(), "48h", "bench")
    result = store.create(record, manifests, "bench")
    elapsed = time.perf_counter() - started
    assert result.commit, name
    return elapsed


def side_by_side(base: Path, manifests: Path, reps: int) -> dict[int, list[float]]:
    """Create times into repositories of 10 and 500 environments, alternating."""
    remotes = {n: prefilled_remote(base, n, manifests) for n in (10, 500)}
    times: dict[int, list[float]] = {10: [], 500: []}
    with open_store(url=remotes[10].as_uri(), cache_root=base / "cache-10",
                    settings=SETTINGS) as small, \
         open_store(url=remotes[500].as_uri(), cache_root=base / "cache-500",
                    settings=SETTINGS) as large:
        stores = {10: small, 500: large}
        for store in stores.values():  # warm each cache (clone) as a worker's would be
            timed_create(store, "warm-up", manifests)
        for i in range(reps):
            order = (10, 500) if i % 2 == 0 else (500, 10)
            for n in order:
                times[n].append(timed_create(stores[n], f"bench-{i:03d}", manifests))
        for n, store in stores.items():
            assert len(store.list()) == n + reps + 1
    return times


def through_the_runner(base: Path, reps: int) -> list[float]:
    """``envforge env create``'s path: the python-service template run inline by the runner
    (fetch:template, debug:log, publish:gitops) against the embedded repository."""
    from envforge.gitops.runs import run_for_environment

    os.environ["ENVFORGE_HOME"] = str(base / "home")
    template = load_template(ROOT / "templates" / "python-service")
    times = []
    for i in range(reps + 1):
        started = time.perf_counter()
        output = run_for_environment(template, {"name": "bench-app"},
                                     {"name": f"run-{i:03d}", "owner": "group:bench"})
        assert output["commitHash"]
        times.append(time.perf_counter() - started)
    return times[1:]  # the first one clones the repository into the cache


def concurrent_creates(base: Path, manifests: Path, writers: int) -> tuple[float, int]:
    """Wall time and commits of ``writers`` creates racing on one remote."""
    bare = base / "concurrent.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def create(i: int) -> None:
        try:
            with open_store(url=bare.as_uri(), cache_root=base / f"machine-{i}",
                            settings=SETTINGS) as store:
                record = store.new_record(f"pr-{i}", spec(), "48h", f"run-{i}")
                barrier.wait(timeout=60)
                store.create(record, manifests, f"run-{i}")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(writers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    wall = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} concurrent create(s) failed: {errors[0]}")
    commits = int(git("--git-dir", str(bare), "rev-list", "--count", "main"))
    present = len(git("--git-dir", str(bare), "ls-tree", "--name-only", "main:argocd").split())
    assert commits == writers and present == writers, (commits, present)
    return wall, present


def main() -> None:
    """Measure, print the table and optionally write the gitops section of the docs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=25)
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    base = Path(tempfile.mkdtemp(prefix="envforge-bench-gitops-"))
    try:
        manifests = python_service_manifests(base / "manifests")
        times = side_by_side(base, manifests, args.reps)
        runner = through_the_runner(base, args.reps)
        wall, present = concurrent_creates(base, manifests, args.writers)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    load_after = os.getloadavg()[0]
    small, large = median(times[10]), median(times[500])
    ratio = large / small
    lines = [
        "## GitOps environments (`bench/gitops.py`)",
        "",
        f"Command: `.venv/bin/python bench/gitops.py --reps {args.reps}"
        f"{' --write-docs' if args.write_docs else ''}`; one process, real git over file://,",
        "python-service manifests; each create = render, validate (kubernetes-validate and the",
        "Argo CD model), secret guard, one commit, push. Creates against the two repositories",
        f"alternate, {args.reps} each, warm caches. Machine: 2 cores shared with other work "
        f"(1-min load average {load_before:.1f} before, {load_after:.1f} after).",
        "",
        "| measurement | median | min | max |",
        "|---|---:|---:|---:|",
        f"| create one environment, 10 in the repository | {small * 1000:.0f} ms | "
        f"{min(times[10]) * 1000:.0f} ms | {max(times[10]) * 1000:.0f} ms |",
        f"| create one environment, 500 in the repository | {large * 1000:.0f} ms | "
        f"{min(times[500]) * 1000:.0f} ms | {max(times[500]) * 1000:.0f} ms |",
        f"| ratio 500 / 10 | {ratio:.2f} | | |",
        f"| create through the runner (python-service: fetch:template, debug:log, "
        f"publish:gitops) | {median(runner) * 1000:.0f} ms | "
        f"{min(runner) * 1000:.0f} ms | {max(runner) * 1000:.0f} ms |",
        f"| {args.writers} concurrent creates, one remote, {args.writers} caches (wall, "
        f"incl. clones) | {wall:.1f} s | | |",
        "",
        f"Targets: median under 1 s: **{'met' if max(small, large) < 1 else 'NOT met'}**; "
        f"ratio at most 1.3: **{'met' if ratio <= 1.3 else 'NOT met'}**; "
        f"{present}/{args.writers} environments present, {args.writers} commits, none lost.",
        "",
        "What kept the 500/10 ratio flat (profiled per git command): staging, diffing and "
        "cleaning only the environment's paths; skipping reset/clean when the cached copy is "
        "at the remote head and clean; committing with write-tree/commit-tree (no whole-index "
        "refresh); a split index (v4); compiled, cached schema validators (kubernetes-validate "
        "re-reads its 1.3 MB definitions on every call).",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        write_docs_section("gitops", text)


if __name__ == "__main__":
    main()
