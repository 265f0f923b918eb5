"""What every benchmark script needs: timing a call, medians of repeated calls, and rewriting
the script's own section of ``docs/benchmarks.md``.

A script runs as ``.venv/bin/python bench/<name>.py``, so Python puts ``bench/`` first on
``sys.path``; :func:`use_project_root` replaces it with the project root (``bench/secrets.py``
once shadowed the standard library's ``secrets``), after which ``envforge``, ``tests.standins``
and this module import as packages::

    from pathlib import Path
    import sys
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    from bench.common import median_seconds, time_call, write_docs_section  # noqa: E402

Sections are delimited by ``<!-- <key>:start -->`` and ``<!-- <key>:end -->``, so a script
rewrites its own figures and leaves every other section as it is.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
#: The page every benchmark writes its section of.
BENCHMARKS_PAGE = ROOT / "docs" / "benchmarks.md"

T = TypeVar("T")


def time_call(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()``'s result and how long it took, in seconds (``time.perf_counter``)."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def seconds(fn: Callable[[], object]) -> float:
    """How long ``fn()`` took, in seconds."""
    return time_call(fn)[1]


def median_seconds(fn: Callable[[], object], reps: int) -> float:
    """The median duration of ``reps`` calls of ``fn`` (at least one), in seconds.

    The median, not the mean: on shared machines a few runs are slowed by other work.
    """
    return median(seconds(fn) for _ in range(max(1, reps)))


def median(values: Iterable[float]) -> float:
    """The median of ``values``; ValueError (naming the cause) when there are none."""
    found = list(values)
    if not found:
        raise ValueError("median of no measurements: run at least one repetition")
    return statistics.median(found)


def section_markers(key: str) -> tuple[str, str]:
    """The start and end comments around the section ``key`` of the benchmarks page."""
    return f"<!-- {key}:start -->", f"<!-- {key}:end -->"


def write_docs_section(key: str, body: str, page: Path = BENCHMARKS_PAGE) -> None:
    """Replace the section ``key`` of ``page`` with ``body`` (between its markers), or append
    it when the page has no such section yet; the rest of the page is kept as it is."""
    start, end = section_markers(key)
    block = f"{start}\n{body.strip(chr(10))}\n{end}"
    text = page.read_text(encoding="utf-8") if page.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text, encoding="utf-8")


def push_busybox_base(buildah: list[str], registry_host: str, tmp: Path) -> str:
    """busybox FROM scratch, built with ``buildah`` (the command and its global options) and
    pushed once to the registry at ``registry_host``: the base image a benchmark's application
    builds on. Its reference."""
    context = tmp / "base"
    context.mkdir()
    shutil.copy2("/bin/busybox", context / "busybox")
    (context / "Containerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", '
        '"/bin"]\n')
    image = f"{registry_host}/base/busybox:1"
    subprocess.run([*buildah, "bud", "--isolation", "chroot", "-t", image, "-f",
                    str(context / "Containerfile"), str(context)], check=True,
                   capture_output=True)
    subprocess.run([*buildah, "push", "--tls-verify=false", image, f"docker://{image}"],
                   check=True, capture_output=True)
    return image


# Side-by-side comparisons (A: the PostgreSQL tools, B: envforge), shared by the database
# benchmarks so their tables read alike.

def runs_text(values: Iterable[float], digits: int = 2) -> str:
    """``1.23, 1.31, 1.18``: every run, in the order they ran."""
    return ", ".join(f"{v:.{digits}f}" for v in values)


def per_run_ratios(a: list[float], b: list[float]) -> list[float]:
    """B/A of each pair of alternating runs (run i of B against run i of A)."""
    return [y / x for x, y in zip(a, b, strict=True)]


def comparison_table(heading: str, rows: list[tuple[str, list[float]]]) -> list[str]:
    """A markdown table of ``(what ran, seconds of each run)``: the median and every run."""
    lines = [f"| {heading} | median s | runs |", "|---|---|---|"]
    lines += [f"| {label} | {median(runs):.2f} | {runs_text(runs)} |" for label, runs in rows]
    return lines


def ratio_summary(a: list[float], b: list[float], target: str, digits: int = 2) -> str:
    """B/A as the median of the per-run ratios (each B against the A beside it, so load that
    hits both alike cancels), the ratio of the medians, and every per-run ratio."""
    ratios = per_run_ratios(a, b)
    return (f"B/A = **{median(ratios):.{digits}f}** as the median of the per-run ratios "
            f"({median(b) / median(a):.{digits}f} from the medians; target {target}); per-run "
            f"ratios {runs_text(ratios, digits)}")
