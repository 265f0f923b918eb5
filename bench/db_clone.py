"""Benchmark: plain copy (A = pg_dump -Fc | pg_restore) against envforge's anonymised clone (B)
and snapshot restore, on a generated database with personal data in several tables.

    .venv/bin/python bench/db_clone.py --scale 1 --reps 3 --memory-scale 0.33 --write-docs

Starts its own throw-away PostgreSQL (scripts/services/postgres.sh, 127.0.0.1, free port) and
stops it by pid at the end. Scale 1 = 1 M users + 2 M orders (~450 MB of tables). Peak memory
is the summed RSS of the clone's whole process tree (main process, copy workers, pg_dump and
pg_restore), sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envforge.db.clone import CloneRequest, clone_database  # noqa: E402
from envforge.db.connection import ServerAddress  # noqa: E402
from envforge.db.rules import parse_rules  # noqa: E402
from envforge.db.schema import pg_tool  # noqa: E402
from envforge.db.snapshot import LocalDirectoryStore, restore_snapshot, take_snapshot  # noqa: E402

SCRIPT = ROOT / "scripts" / "services" / "postgres.sh"
BENCH_KEY = b"benchmark-key-not-a-secret-0123456789"
RULES = {
    "tables": {
        "users": {"email": "email", "first_name": "first_name", "last_name": "last_name",
                  "phone": "phone", "birth_date": "date_of_birth",
                  "street_address": "address", "city": "city", "bio": "passthrough"},
        "orders": {"shipping_address": "address"},
    }
}
GENERATE = """
CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped', 'returned');
CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE,
    first_name text NOT NULL, last_name text NOT NULL, phone text, birth_date date,
    street_address text, city text, country char(2), created_at timestamptz NOT NULL,
    bio text);
CREATE TABLE orders (
    id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id),
    ordered_at timestamptz NOT NULL, status order_status NOT NULL, amount numeric(10, 2),
    items int NOT NULL, shipping_address text, note text);
CREATE TABLE products (id int PRIMARY KEY, label text NOT NULL, price numeric(8, 2));
INSERT INTO products SELECT g, 'product ' || g, g % 300 + 0.5 FROM generate_series(1, 5000) g;
INSERT INTO users (email, first_name, last_name, phone, birth_date, street_address, city,
                   country, created_at, bio)
SELECT 'user' || g || '.' || substr(md5(g::text), 1, 6) || '@mail.test',
       (ARRAY['Olivia','Liam','Emma','Noah','Amelia','Oliver','Sophia','Elijah'])[1 + g % 8],
       (ARRAY['Smith','Johnson','Williams','Brown','Jones','Garcia','Miller'])[1 + g % 7],
       '+1 415 ' || lpad((g % 10000000)::text, 7, '0'), date '1950-01-01' + g % 20000,
       (g % 9999) || ' Main Street', (ARRAY['Springfield','Riverside','Fairview'])[1 + g % 3],
       'US', timestamptz '2020-01-01' + g * interval '1 minute',
       'Enjoys hiking, cooking and reading; member since ' || (2000 + g % 24)
FROM generate_series(1, {users}) g;
INSERT INTO orders
SELECT g, 1 + (g::bigint * 7919) % {users}, timestamptz '2021-01-01' + g * interval '30 seconds',
       (ARRAY['new','paid','shipped','returned']::order_status[])[1 + g % 4],
       (g % 100000) / 100.0, 1 + g % 9, (g % 9999) || ' Oak Avenue, Riverside',
       'gift wrap: ' || (g % 2 = 0) || ', product ' || (g % 5000)
FROM generate_series(1, {orders}) g;
VACUUM ANALYZE;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def psql(server: ServerAddress, sql: str, db: str = "postgres") -> str:
    out = subprocess.run([pg_tool("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                          f"--dbname={server.with_database(db).conninfo()}", "-c", sql],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def generate(server: ServerAddress, name: str, scale: float) -> dict[str, float]:
    psql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(server, f'CREATE DATABASE "{name}"')
    users, orders = int(1_000_000 * scale), int(2_000_000 * scale)
    subprocess.run([pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                    f"--dbname={server.with_database(name).conninfo()}"],
                   input=GENERATE.format(users=users, orders=orders), text=True, check=True)
    rows = int(psql(server, "SELECT sum(n_live_tup) FROM pg_stat_user_tables", name))
    table_bytes = int(psql(server, "SELECT sum(pg_table_size(relid)) FROM pg_stat_user_tables",
                           name))
    db_bytes = int(psql(server, f"SELECT pg_database_size('{name}')"))
    return {"rows": rows, "table_mb": table_bytes / 1e6, "db_mb": db_bytes / 1e6}


class TreeMemory:
    """Peak summed RSS of a process and all its descendants, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.peak_detail: list[tuple[str, int]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            total, detail = self._tree_rss()
            if total > self.peak:
                self.peak, self.peak_detail = total, detail
            time.sleep(0.05)

    def _tree_rss(self) -> tuple[int, list[tuple[str, int]]]:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        tree, frontier = {self.pid}, [self.pid]
        while frontier:
            p = frontier.pop()
            kids = [c for c, pp in parents.items() if pp == p and c not in tree]
            tree.update(kids)
            frontier += kids
        total, detail = 0, []
        for pid in tree:
            try:
                status = Path(f"/proc/{pid}/status").read_text().splitlines()
            except OSError:
                continue
            name = next((x.split()[1] for x in status if x.startswith("Name:")), "?")
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                    total += rss
                    detail.append((name, rss))
        return total, detail

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_plain_copy(server: ServerAddress, source: str, target: str) -> float:
    psql(server, f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
    psql(server, f'CREATE DATABASE "{target}"')
    return dump_and_restore(server, source, target)


def dump_and_restore(server: ServerAddress, source: str, target: str) -> float:
    """``pg_dump -Fc source | pg_restore -d target`` (an existing, empty database); seconds."""
    started = time.perf_counter()
    dump = subprocess.Popen([pg_tool("pg_dump"), "-Fc",
                             f"--dbname={server.with_database(source).conninfo()}"],
                            stdout=subprocess.PIPE)
    subprocess.run([pg_tool("pg_restore"), "--no-owner",
                    f"--dbname={server.with_database(target).conninfo()}"],
                   stdin=dump.stdout, check=True)
    assert dump.stdout is not None
    dump.stdout.close()
    if dump.wait() != 0:
        raise RuntimeError("pg_dump failed")
    return time.perf_counter() - started


def settle(server: ServerAddress, database: str) -> None:
    """After a timed run, outside the timers: VACUUM ANALYZE the database it made, so that
    autovacuum's work on 3 M freshly loaded rows (up to seconds of a core) does not land in
    the next run, A's leftovers in B's time or B's in A's. Both sides get the same."""
    psql(server, "VACUUM (ANALYZE)", database)


def run_clone(server: ServerAddress, source: str, target: str,
              jobs: int) -> tuple[float, int, str]:
    """B in a child process so its whole tree's memory can be measured. The previous rep's
    target is dropped before the timer starts, as A's is (run_plain_copy): B's time covers
    creating its target and everything after, not removing a leftover (DROP DATABASE forces a
    checkpoint, about 0.2 s here)."""
    psql(server, f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "_clone", str(server.port), source,
                              target, str(jobs)])
    meter = TreeMemory(child.pid)
    code = child.wait()
    seconds, peak = time.perf_counter() - started, meter.stop()
    detail = ", ".join(f"{n} {r / 2**20:.0f}" for n, r in
                       sorted(meter.peak_detail, key=lambda x: -x[1]))
    if code != 0:
        raise RuntimeError(f"clone failed with exit code {code}")
    return seconds, peak, detail


def clone_child(port: int, source: str, target: str, jobs: int) -> None:
    server = ServerAddress("127.0.0.1", port)
    clone_database(CloneRequest(server.with_database(source), server.with_database(target),
                                parse_rules(RULES), BENCH_KEY, jobs=jobs, replace=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--memory-scale", type=float, default=0.33,
                        help="smaller scale whose clone's peak memory is compared")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="envforge-bench-pg-")
    port = free_port()
    subprocess.run(["bash", str(SCRIPT), "start", workdir, str(port)], check=True,
                   stdout=subprocess.DEVNULL)
    server = ServerAddress("127.0.0.1", port)
    try:
        results = bench(server, args, Path(workdir))
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", workdir], check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    report = render(results, args)
    print(report)
    if args.write_docs:
        write_docs(report)


def bench(server: ServerAddress, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    print(f"generating scale {args.scale} ...", flush=True)
    size = generate(server, "bench_src", args.scale)
    print(json.dumps(size), flush=True)
    a_times, b_times, b_peaks, s_times, details = [], [], [], [], []
    load_before = os.getloadavg()[0]
    store = LocalDirectoryStore(workdir / "snapshots")
    for rep in range(args.reps):  # A and B alternate so drift hits both alike
        a_times.append(run_plain_copy(server, "bench_src", "bench_plain"))
        settle(server, "bench_plain")
        seconds, peak, detail = run_clone(server, "bench_src", "envforge_bench", args.jobs)
        settle(server, "envforge_bench")
        b_times.append(seconds)
        b_peaks.append(peak)
        details.append(detail)
        print(f"rep {rep + 1}: A {a_times[-1]:.1f} s, B {seconds:.1f} s, "
              f"B peak {peak / 2**20:.0f} MiB", flush=True)
    take_snapshot(server, "envforge_bench", store, "bench")
    for _ in range(args.reps):
        s_times.append(restore_snapshot(store, "bench", server.with_database("envforge_snap"),
                                        {"environment": "bench"}, replace=True, jobs=args.jobs))
    print(f"generating scale {args.memory_scale} ...", flush=True)
    small = generate(server, "bench_small", args.memory_scale)
    _, small_peak, small_detail = run_clone(server, "bench_small", "envforge_bench_small",
                                            args.jobs)
    return {"size": size, "small": small, "a": a_times, "b": b_times, "b_peaks": b_peaks,
            "restore": s_times, "small_peak": small_peak, "details": details,
            "small_detail": small_detail, "load": (load_before, os.getloadavg()[0])}


def render(r: dict[str, Any], args: argparse.Namespace) -> str:
    a, b, s = (statistics.median(r[k]) for k in ("a", "b", "restore"))
    rows, mb = r["size"]["rows"], r["size"]["table_mb"]
    peak = max(r["b_peaks"]) / 2**20
    peak_detail = r["details"][r["b_peaks"].index(max(r["b_peaks"]))]
    ratios = [bt / at for at, bt in zip(r["a"], r["b"], strict=True)]
    small_peak = r["small_peak"] / 2**20
    ratio = r["size"]["rows"] / max(r["small"]["rows"], 1)

    def line(name: str, secs: float) -> str:
        return f"| {name} | {secs:.1f} | {rows / secs:,.0f} | {mb / secs:.1f} |"

    return "\n".join([
        f"Command: `.venv/bin/python bench/db_clone.py --scale {args.scale} --reps {args.reps} "
        f"--memory-scale {args.memory_scale} --jobs {args.jobs}` (2 cores, PostgreSQL 15, "
        "fsync off on the throw-away cluster for both sides).",
        "",
        f"Source: {rows:,} rows, {mb:.0f} MB of tables ({r['size']['db_mb']:.0f} MB database "
        "with indexes); personal data in users (7 columns) and orders (1 column).",
        "",
        "| strategy | median s | rows/s | MB/s |",
        "|---|---|---|---|",
        line("A: pg_dump -Fc \\| pg_restore (plain copy)", a),
        line("B: envforge clone, anonymised", b),
        line("snapshot restore (pg_restore -j 2 of B's snapshot)", s),
        "",
        f"- B/A = **{b / a:.2f}** from the medians (target <= 1.15); per-run ratios "
        f"{', '.join(f'{x:.2f}' for x in ratios)} (median {statistics.median(ratios):.2f}); "
        f"snapshot restore / A = {s / a:.2f}",
        f"- A runs: {', '.join(f'{x:.1f}' for x in r['a'])} s; B runs: "
        f"{', '.join(f'{x:.1f}' for x in r['b'])} s",
        f"- Peak memory of the clone (whole process tree): {peak:.0f} MiB at "
        f"{rows:,} rows vs {small_peak:.0f} MiB at {r['small']['rows']:,} rows "
        f"({ratio:.1f}x the data); by process (MiB) at the peak: {peak_detail}",
        f"- 1-minute load average {r['load'][0]:.1f} before and {r['load'][1]:.1f} after: the "
        "machine's 2 cores were shared with other work, so A and B alternate and both pay it",
    ])


def write_docs(report: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    start, end = "<!-- db:start -->", "<!-- db:end -->"
    section = f"{start}\n## Databases: anonymised clone\n\n{report}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_clone":
        clone_child(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
