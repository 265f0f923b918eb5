"""Benchmark: the compiled column loops (envforge/db/keyed_c.c) against the Python loops they
replace, side by side in one process, on the same generated column.

    .venv/bin/python bench/keyed_loop.py --values 1000000 --reps 5 --write-docs

For each kind (e-mail, phone, and hash over the e-mails) the Python loop and the compiled loop
run alternately on one column of ``--values`` plain ASCII values (as the copy path hands them
over, a list of bytes); each is timed ``--reps`` times and the median kept. Both outputs are
compared first, so the figures are of loops that give the same fakes. CPU only: no database.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from bench.common import median, seconds, write_docs_section  # noqa: E402
from envforge.db import keyed_loops  # noqa: E402
from envforge.db.transformers import sub_key  # noqa: E402

KEY = b"bench anonymisation key, 32 byte"


def column(kind: str, count: int) -> list[bytes]:
    """``count`` distinct values shaped like a users table's (mixed case, punctuation)."""
    if kind == "phone":
        return [f"+1 ({200 + i % 800}) 555-{i % 10_000:04d} x{i // 10_000}".encode()
                for i in range(count)]
    return [f"User{i}.Name{i % 97}@Mail{i % 13}.example".encode() for i in range(count)]


def lanes_variant() -> str:
    """Which compiled variant of the lanes this CPU runs (the one keyed_c.c's dispatch picks:
    x86-64-v4's AVX-512, else AVX2, else SSE2), read from /proc/cpuinfo."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    if {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags:
        return "AVX-512"
    return "AVX2" if "avx2" in flags else "SSE2"


def bench_kind(kind: str, count: int, reps: int) -> tuple[float, float]:
    """Median seconds of the Python (A) and compiled (B) loop over one column."""
    values = column("phone" if kind == "phone" else "email", count)
    python = keyed_loops.python_loop(kind, sub_key(KEY, kind), 32, None)
    compiled = keyed_loops.compiled_loop(kind, sub_key(KEY, kind), 32, None)
    if python(values[:10_000]) != compiled(values[:10_000]):
        raise SystemExit(f"{kind}: the compiled loop differs from the Python loop")
    a: list[float] = []
    b: list[float] = []
    for _ in range(reps):  # alternating, so load that comes and goes hits both alike
        a.append(seconds(lambda: python(values)))
        b.append(seconds(lambda: compiled(values)))
    return median(a), median(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true",
                        help="rewrite this benchmark's section of docs/benchmarks.md")
    args = parser.parse_args()
    if not keyed_loops.COMPILED:
        raise SystemExit("envforge.db.keyed_c is not built: run `make install` (needs gcc)")
    rows = ["| kind | A: Python loop, us/value | B: compiled loop, us/value | A/B |",
            "|---|---|---|---|"]
    for kind in keyed_loops.KINDS:
        a, b = bench_kind(kind, args.values, args.reps)
        per_a, per_b = a / args.values * 1e6, b / args.values * 1e6
        rows.append(f"| {kind} | {per_a:.3f} | {per_b:.3f} | {a / b:.1f}x |")
        print(rows[-1], flush=True)
    command = (f".venv/bin/python bench/keyed_loop.py --values {args.values} --reps "
               f"{args.reps} --write-docs")
    section = "\n".join([
        "## Keyed column loops (e-mail, phone, hash fakes)", "",
        f"`{command}`: one column of {args.values:,} distinct plain ASCII values (a users "
        "table's e-mails or phone numbers, as the copy path hands a block's column over), "
        f"median of {args.reps} runs each, A and B alternating in one process, outputs "
        "checked equal first. A: the Python loop (`envforge/db/keyed_loops.py`, the fallback "
        "and reference); B: the compiled loop (`envforge/db/keyed_c.c`), which a clone uses "
        "when the extension is built; it hashes values of up to 128 bytes eight at a time in "
        f"vector lanes ({lanes_variant()} on this CPU).", "", *rows])
    if args.write_docs:
        write_docs_section("keyed-loop", section)


if __name__ == "__main__":
    main()
