"""Benchmark: the `envforge db` commands as a user times them, against the PostgreSQL tools.

    .venv/bin/python bench/db_cli.py --reps 5 --golden-scale 1.0 --big-scale 1.0 --write-docs

Every figure is the wall time of a whole command run as a subprocess (interpreter start,
imports, connections and all), on a throw-away PostgreSQL 15 started with its default
settings (fsync, synchronous_commit and full_page_writes on; only the address, port and socket
directory are set), 127.0.0.1, free port, stopped by pid at the end. A and B alternate, so
drift and other work on the machine hit both alike; after each timed run, outside the timers,
the database it made gets VACUUM ANALYZE and the server a CHECKPOINT, so one run's dirty pages
and autovacuum do not land in the next run's time.

1. Pagila-sized (bench/db_branch.py's Pagila-like schema): ``envforge db clone`` (anonymised,
   strict) against ``createdb && pg_dump -Fc | pg_restore`` (target <= 1.3).
2. Branch: ``envforge db branch`` from a fresh golden of bench/db_clone.py's users/orders data
   against ``createdb && pg_restore -j 2`` of a dump of the same data (target <= 0.15).
3. 3 M rows: ``envforge db clone`` of the users/orders data against ``createdb && pg_dump -Fc
   | pg_restore`` (target <= 1.0).
4. ``envforge db --help`` alone.

Python's bytecode: this machine sets PYTHONDONTWRITEBYTECODE=1, so without a cache every
command would compile envforge's modules from source, which no installed package does; the
commands run with a bytecode cache of their own (PYTHONPYCACHEPREFIX under the work dir,
filled by one untimed run; ``--no-bytecode`` times them compiling, as runs before 2026-12-05
did). ``--baseline-tree DIR`` adds a third side to the Pagila part: the same clone by the
envforge package in DIR (e.g. ``git archive <commit> envforge | tar -x -C DIR``), so a change
is measured against the code before it under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from db_branch import PAGILA_LIKE, PAGILA_RULES  # type: ignore[import-not-found]  # noqa: E402
from db_clone import (  # type: ignore[import-not-found]  # noqa: E402
    BENCH_KEY,
    RULES,
    SCRIPT,
    free_port,
    generate,
    psql,
)

from bench.common import comparison_table, ratio_summary, runs_text  # noqa: E402
from envforge.db.connection import ServerAddress  # noqa: E402
from envforge.db.schema import pg_tool  # noqa: E402

ENVFORGE = str(ROOT / ".venv" / "bin" / "envforge")
PGBIN = Path(pg_tool("pg_ctl")).parent


def as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.getuid() == 0 else args


def start_default_server(pgdir: str, port: int) -> ServerAddress:
    """initdb through scripts/services/postgres.sh, then restart with PostgreSQL's defaults
    (the script's start turns fsync off for tests)."""
    subprocess.run(["bash", str(SCRIPT), "start", pgdir, str(port)], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["bash", str(SCRIPT), "stop", pgdir], check=True)
    subprocess.run(as_postgres([str(PGBIN / "pg_ctl"), "-D", f"{pgdir}/data", "-l",
                                f"{pgdir}/server.log", "-w", "-t", "60", "start", "-o",
                                f"-c listen_addresses=127.0.0.1 -p {port} -k {pgdir}"]),
                   check=True, stdout=subprocess.DEVNULL)
    server = ServerAddress("127.0.0.1", port)
    settings = psql(server, "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) "
                            "FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', "
                            "'full_page_writes', 'shared_buffers', 'max_wal_size')")
    print(f"server settings: {settings}", flush=True)
    return server


def timed(command: str, env: dict[str, str]) -> float:
    """Wall time of a shell command line (a user's command, pipes included)."""
    started = time.perf_counter()
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command!r} failed: {done.stderr.strip()[-500:]}")
    return seconds


def settle(server: ServerAddress, database: str) -> None:
    psql(server, "VACUUM (ANALYZE)", database)
    psql(server, "CHECKPOINT")


def drop(server: ServerAddress, database: str) -> None:
    psql(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    psql(server, "CHECKPOINT")


class Tools:
    """The command lines of both sides for one server."""

    def __init__(self, server: ServerAddress, workdir: Path, bytecode: bool = True,
                 baseline: Path | None = None) -> None:
        self.server, self.workdir, self.baseline = server, workdir, baseline
        self.env = dict(os.environ, ENVFORGE_ANONYMISATION_KEY=BENCH_KEY.decode(),
                        PGHOST=server.host, PGPORT=str(server.port), PGUSER=server.user)
        if bytecode:  # as an installed package has it (see the module docstring)
            self.env.pop("PYTHONDONTWRITEBYTECODE", None)
            self.env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
        self.bin = PGBIN

    def dsn(self, database: str) -> str:
        return f"host={self.server.host} port={self.server.port} user=postgres dbname={database}"

    def rules_file(self, name: str, rules: dict[str, Any]) -> Path:
        path = self.workdir / f"{name}.yaml"
        path.write_text(json.dumps(rules), encoding="utf-8")  # JSON is YAML
        return path

    def dump_restore(self, source: str, target: str) -> str:
        return (f"{self.bin}/createdb {target} && {self.bin}/pg_dump -Fc -d {source} | "
                f"{self.bin}/pg_restore --no-owner -d {target}")

    def restore_file(self, dump: Path, target: str, jobs: int) -> str:
        return (f"{self.bin}/createdb {target} && {self.bin}/pg_restore --no-owner -j {jobs} "
                f"-d {target} {dump}")

    def clone(self, source: str, env: str, rules: Path, jobs: int, *,
              baseline: bool = False) -> str:
        command = ENVFORGE
        if baseline:  # the package in the baseline tree, started as the console script does
            command = (f"cd {self.baseline} && {sys.executable} -c 'import sys; from "
                       "envforge.cli import main; sys.exit(main())'")
        return (f"{command} db clone --source '{self.dsn(source)}' --server "
                f"'{self.dsn('postgres')}' -e {env} --rules {rules} --jobs {jobs}")

    def branch(self, source: str, env: str, rules: Path, golden: str, jobs: int) -> str:
        return (f"{ENVFORGE} db branch --source '{self.dsn(source)}' --server "
                f"'{self.dsn('postgres')}' -e {env} --rules {rules} --golden {golden} "
                f"--jobs {jobs}")


LOADS: list[float] = []  # 1-minute load average after each pair of runs


def alternate(reps: int, label: str, a: Callable[[], float], b: Callable[[], float]
              ) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for rep in range(reps):
        first, second = (a, b) if rep % 2 == 0 else (b, a)  # who goes first alternates too
        r1 = first()
        r2 = second()
        x, y = (r1, r2) if rep % 2 == 0 else (r2, r1)
        xs.append(x)
        ys.append(y)
        LOADS.append(os.getloadavg()[0])
        print(f"{label} rep {rep + 1}: A {x:.2f} s, B {y:.2f} s, B/A {y / x:.2f}, load "
              f"{LOADS[-1]:.1f}", flush=True)
    return xs, ys


def run_pair(server: ServerAddress, command: str, env: dict[str, str], database: str) -> float:
    drop(server, database)
    seconds = timed(command, env)
    settle(server, database)
    return seconds


def alternate3(reps: int, label: str, sides: list[Callable[[], float]]) -> list[list[float]]:
    """Three sides in a rotating order (ABC, BCA, CAB, ...)."""
    runs: list[list[float]] = [[] for _ in sides]
    for rep in range(reps):
        for k in range(len(sides)):
            i = (rep + k) % len(sides)
            runs[i].append(sides[i]())
        LOADS.append(os.getloadavg()[0])
        a, b, c = (r[-1] for r in runs)
        print(f"{label} rep {rep + 1}: A {a:.2f} s, B {b:.2f} s, C {c:.2f} s, B/A {b / a:.2f}, "
              f"C/A {c / a:.2f}, B/C {b / c:.2f}, load {LOADS[-1]:.1f}", flush=True)
    return runs


def bench(server: ServerAddress, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    tools = Tools(server, workdir, bytecode=not args.no_bytecode, baseline=args.baseline_tree)
    out: dict[str, Any] = {"load": [os.getloadavg()[0]]}
    timed(f"{ENVFORGE} db --help", tools.env)  # fills the bytecode cache (untimed)
    helps = [timed(f"{ENVFORGE} db --help", tools.env) for _ in range(max(args.reps, 3))]
    out["help"] = helps
    print(f"envforge db --help: {', '.join(f'{h:.2f}' for h in helps)} s", flush=True)
    if "pagila" in args.parts:
        subprocess.run([pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                        f"--dbname={server.conninfo()}", "-c",
                        "DROP DATABASE IF EXISTS pagila_like", "-c",
                        "CREATE DATABASE pagila_like"], check=True)
        subprocess.run([pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                        f"--dbname={server.with_database('pagila_like').conninfo()}"],
                       input=PAGILA_LIKE, text=True, check=True, stdout=subprocess.DEVNULL)
        settle(server, "pagila_like")
        out["pagila"] = {
            "rows": int(psql(server, "SELECT sum(n_live_tup) FROM pg_stat_user_tables",
                             "pagila_like")),
            "db_mb": int(psql(server, "SELECT pg_database_size('pagila_like')")) / 1e6}
        rules = tools.rules_file("pagila", PAGILA_RULES)
        for baseline in (False, True) if args.baseline_tree else (False,):  # untimed warm-up
            run_pair(server, tools.clone("pagila_like", "pagila", rules, args.jobs,
                                         baseline=baseline), tools.env, "envforge_pagila")
        sides = [
            lambda: run_pair(server, tools.dump_restore("pagila_like", "pagila_plain"),
                             tools.env, "pagila_plain"),
            lambda: run_pair(server, tools.clone("pagila_like", "pagila", rules, args.jobs),
                             tools.env, "envforge_pagila")]
        if args.baseline_tree:
            sides.append(lambda: run_pair(
                server, tools.clone("pagila_like", "pagila", rules, args.jobs, baseline=True),
                tools.env, "envforge_pagila"))
            out["pagila_a"], out["pagila_b"], out["pagila_c"] = alternate3(
                args.reps, "pagila", sides)
        else:
            out["pagila_a"], out["pagila_b"] = alternate(args.reps, "pagila", *sides)
    if "branch" in args.parts and args.golden_scale > 0:
        print(f"generating users/orders at scale {args.golden_scale} ...", flush=True)
        out["golden_source"] = generate(server, "golden_src", args.golden_scale)
        settle(server, "golden_src")
        rules = tools.rules_file("users", RULES)
        drop(server, "envforge_warm")
        out["golden_build"] = timed(tools.branch("golden_src", "warm", rules, "bench",
                                                 args.jobs), tools.env)
        out["golden_mb"] = int(psql(server, "SELECT pg_database_size("
                                            "'envforge_golden_bench')")) / 1e6
        dump = workdir / "golden.dump"
        timed(f"{PGBIN}/pg_dump -Fc -d envforge_warm -f {dump}", tools.env)
        psql(server, "CHECKPOINT")
        out["restore"], out["branch"] = alternate(
            args.reps, "branch",
            lambda: run_pair(server, tools.restore_file(dump, "restored", args.jobs),
                             tools.env, "restored"),
            lambda: run_pair(server, tools.branch("golden_src", "branched", rules, "bench",
                                                  args.jobs), tools.env, "envforge_branched"))
    if "big" in args.parts and args.big_scale > 0:
        if "golden_source" not in out or args.big_scale != args.golden_scale:
            print(f"generating users/orders at scale {args.big_scale} ...", flush=True)
            out["big_source"] = generate(server, "golden_src", args.big_scale)
            settle(server, "golden_src")
        else:
            out["big_source"] = out["golden_source"]
        rules = tools.rules_file("users", RULES)
        out["big_a"], out["big_b"] = alternate(
            args.big_reps, "3M",
            lambda: run_pair(server, tools.dump_restore("golden_src", "big_plain"), tools.env,
                             "big_plain"),
            lambda: run_pair(server, tools.clone("golden_src", "big", rules, args.jobs),
                             tools.env, "envforge_big"))
    out["load"].append(os.getloadavg()[0])
    return out


def render(r: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"Command: `.venv/bin/python bench/db_cli.py --reps {args.reps} --big-reps "
        f"{args.big_reps} --golden-scale {args.golden_scale} --big-scale {args.big_scale} "
        f"--jobs {args.jobs} --parts {' '.join(args.parts)}"
        + (" --no-bytecode" if args.no_bytecode else "")
        + (" --baseline-tree DIR" if args.baseline_tree else "")
        + "`. Wall time of whole commands run as subprocesses (what a user's shell sees), "
        "PostgreSQL 15 at its default settings (fsync, synchronous_commit, full_page_writes "
        "on; shared_buffers 128MB), 2 cores; A and B alternate (and which goes first "
        "alternates); VACUUM ANALYZE and CHECKPOINT "
        "after every run, outside the timers.",
        "",
        f"- `envforge db --help`: median {statistics.median(r['help']):.2f} s "
        f"({runs_text(r['help'])})",
    ]
    if "pagila_a" in r:
        lines += [
            "",
            f"Pagila-like source: {r['pagila']['rows']:,} rows, {r['pagila']['db_mb']:.0f} MB "
            "(bench/db_branch.py's schema).",
            "",
            *comparison_table("Pagila-sized", [
                ("A: `createdb T && pg_dump -Fc S \\| pg_restore -d T`", r["pagila_a"]),
                ("B: `envforge db clone --source S --server ... -e E --rules R`",
                 r["pagila_b"])]),
            "",
            f"- {ratio_summary(r['pagila_a'], r['pagila_b'], '<= 1.3')}",
        ]
        if "pagila_c" in r:
            ratios = [b / c for b, c in zip(r["pagila_b"], r["pagila_c"], strict=True)]
            lines += [
                f"- C: the same clone by the baseline tree ({args.baseline_tree}): median "
                f"{statistics.median(r['pagila_c']):.2f} s ({runs_text(r['pagila_c'])}); "
                f"C/A {statistics.median(r['pagila_c']) / statistics.median(r['pagila_a']):.2f} "
                f"from the medians; B/C per run {runs_text(ratios)}, median "
                f"**{statistics.median(ratios):.2f}**"]
    if "branch" in r:
        lines += [
            "",
            f"Golden: {r['golden_source']['rows']:,} rows (bench/db_clone.py's users/orders), "
            f"envforge_golden_bench {r['golden_mb']:.0f} MB, built by the first `envforge db "
            f"branch` in {r['golden_build']:.1f} s (command wall time).",
            "",
            *comparison_table("per environment", [
                (f"A: `createdb T && pg_restore -j {args.jobs} -d T golden.dump`", r["restore"]),
                ("B: `envforge db branch --source S ... --golden bench` (golden fresh)",
                 r["branch"])]),
            "",
            f"- {ratio_summary(r['restore'], r['branch'], '<= 0.15', 3)}",
        ]
    if "big_a" in r:
        src = r["big_source"]
        lines += [
            "",
            f"Users/orders source: {src['rows']:,} rows, {src['db_mb']:.0f} MB database.",
            "",
            *comparison_table("3 M rows", [
                ("A: `createdb T && pg_dump -Fc S \\| pg_restore -d T`", r["big_a"]),
                (f"B: `envforge db clone ... --jobs {args.jobs}` (anonymised)", r["big_b"])]),
            "",
            f"- {ratio_summary(r['big_a'], r['big_b'], '<= 1.0')}",
        ]
    lines.append(f"- 1-minute load average {r['load'][0]:.1f} at the start and "
                 f"{r['load'][-1]:.1f} at the end" + (
                     f"; after each pair of runs: median {statistics.median(LOADS):.1f}, "
                     f"{min(LOADS):.1f} to {max(LOADS):.1f}" if LOADS else ""))
    return "\n".join(lines)


def write_docs(report: str, notes: str) -> None:
    """Replace the db-cli section of docs/benchmarks.md (added before the db section)."""
    path = ROOT / "docs" / "benchmarks.md"
    start, end = "<!-- db-cli:start -->", "<!-- db-cli:end -->"
    section = (f"{start}\n## Databases as a user times them (`bench/db_cli.py`)\n\n{report}\n"
               f"{notes}{end}")
    text = path.read_text(encoding="utf-8")
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        anchor = "<!-- db:start -->"
        text = text.replace(anchor, section + "\n\n" + anchor, 1)
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--big-reps", type=int, default=3)
    parser.add_argument("--golden-scale", type=float, default=1.0,
                        help="users/orders scale of the golden (1.0: ~630 MB)")
    parser.add_argument("--big-scale", type=float, default=1.0,
                        help="users/orders scale of the big clone (1.0: 3 M rows)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--parts", nargs="+", default=["pagila", "branch", "big"],
                        choices=["pagila", "branch", "big"])
    parser.add_argument("--no-bytecode", action="store_true",
                        help="no bytecode cache: every command compiles envforge's modules")
    parser.add_argument("--baseline-tree", type=Path, metavar="DIR",
                        help="Pagila part: also time the clone by the envforge package in DIR")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    parser.add_argument("--write-docs", type=Path, metavar="NOTES",
                        help="write the report into docs/benchmarks.md, followed by the "
                             "markdown in NOTES (conditions, what is met)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="envforge-bench-cli-"))
    pgdir = tempfile.mkdtemp(prefix="envforge-bench-pg-")
    port = free_port()
    server = start_default_server(pgdir, port)
    try:
        results = bench(server, args, workdir)
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", pgdir], check=False)
        shutil.rmtree(pgdir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    report = render(results, args)
    print(report)
    if args.out:
        args.out.write_text(report + "\n", encoding="utf-8")
    if args.write_docs:
        write_docs(report, args.write_docs.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
