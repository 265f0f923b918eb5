"""Benchmark: a cold image build against a warm (cached) request for the same commit, and the
clone time with a cold and a warm mirror. Everything is real: git, buildah (vfs, chroot) and a
docker-registry started by scripts/services/registry.sh on 127.0.0.1, stopped by its pid.

Each run pushes a new commit (so the cold build is really cold), builds it, then asks again
for the same branch (fetch + resolve + cache lookup) and for the same commit (no fetch). The
figures are medians over the runs, measured side by side in one process.

    .venv/bin/python bench/image_build.py --runs 5 [--write]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    median,
    push_busybox_base,
    time_call,
    write_docs_section,
)
from envforge.images.build import ImageBuildSpec, build_image  # noqa: E402
from envforge.images.builders import BuildahBuilder  # noqa: E402
from envforge.images.registry_client import RegistryAccess  # noqa: E402
from envforge.images.source import GitSourceCache  # noqa: E402

MAX_RUNS = 20
SITE_FILES = 240  # a small static site: ~2.4 MB of HTML/CSS/JS, precompressed in a RUN step
DOCKERFILE = """FROM {base}
COPY . /www
RUN find /www -type f \\( -name '*.js' -o -name '*.css' -o -name '*.html' \\) \\
    -exec gzip -9 -k {{}} \\;
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""


def git(*args: str, cwd: Path | None = None) -> str:
    """Run git in ``cwd``; its stdout."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for the local registry)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_site(work: Path, base: str) -> None:
    """Deterministic pseudo-content, so runs are comparable."""
    (work / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    for i in range(SITE_FILES):
        ext = ("html", "css", "js")[i % 3]
        seed = hashlib.sha256(str(i).encode()).hexdigest()
        lines = [f"/* {seed} line {n} */ .c{i}-{n} {{ margin: {n}px; }}" for n in range(180)]
        path = work / ("assets" if ext != "html" else "pages") / f"f{i:04d}.{ext}"
        path.parent.mkdir(exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


def main() -> int:
    """Measure builds against a local registry; print and optionally write the docs section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    runs = max(1, min(args.runs, MAX_RUNS))
    logging.basicConfig(level=logging.WARNING)
    log = logging.getLogger("bench.images")
    tmp = Path(tempfile.mkdtemp(prefix="envforge-bench-images-"))
    script = ROOT / "scripts" / "services" / "registry.sh"
    registry_dir = tmp / "registry"
    port = subprocess.run(["bash", str(script), "start", str(registry_dir), str(free_port())],
                          check=True, capture_output=True, text=True).stdout.split()[0]
    try:
        access = RegistryAccess(f"127.0.0.1:{port}", tls_verify=False)
        builder = BuildahBuilder(storage_root=tmp / "buildah" / "root",
                                 run_root=tmp / "buildah" / "run")
        base = push_busybox_base(builder.global_options(), access.host, tmp)
        rows = measure(runs, access, builder, base, tmp, log)
    finally:
        subprocess.run(["bash", str(script), "stop", str(registry_dir)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    report = render(rows, runs)
    print(report)
    if args.write:
        write_docs_section("images", report)
    return 0


def measure(runs: int, access: RegistryAccess, builder: BuildahBuilder, base: str, tmp: Path,
            log: logging.Logger) -> dict[str, list[float]]:
    """Per run: cold and warm clones, a cold build, warm builds by branch and by commit."""
    work, bare = tmp / "app-work", tmp / "app.git"
    git("init", "--quiet", "--initial-branch=main", str(work))
    make_site(work, base)
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "site", cwd=work)
    git("clone", "--quiet", "--bare", str(work), str(bare))
    git("remote", "add", "origin", str(bare), cwd=work)
    url = bare.as_uri()
    sources = GitSourceCache(tmp / "sources")
    rows: dict[str, list[float]] = {k: [] for k in (
        "cold_build", "warm_branch", "warm_commit", "clone_cold_mirror", "clone_warm_mirror")}
    for run in range(runs):
        (work / "pages" / "release.html").write_text(f"<p>release {run}</p>\n")
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", f"release {run}", cwd=work)
        git("push", "--quiet", "origin", "main", cwd=work)
        # clone with a cold mirror (first request for a repository) vs a warm one (new commit)
        fresh = GitSourceCache(tmp / f"fresh-{run}")
        cold_clone = clone_seconds(fresh, url, tmp / "checkouts")
        warm_clone = clone_seconds(sources, url, tmp / "checkouts")
        shutil.rmtree(tmp / f"fresh-{run}", ignore_errors=True)
        rows["clone_cold_mirror"].append(cold_clone)
        rows["clone_warm_mirror"].append(warm_clone)
        spec = ImageBuildSpec(repo_url=url, ref="main", app="site")
        cold, cold_s = time_call(partial(build_image, spec, access, builder, sources, log))
        assert not cold.cached, "the cold build must build"
        warm, warm_s = time_call(partial(build_image, spec, access, builder, sources, log))
        assert warm.cached and warm.digest == cold.digest
        by_commit = ImageBuildSpec(repo_url=url, ref=cold.commit, app="site")
        pinned, pinned_s = time_call(partial(build_image, by_commit, access, builder, sources,
                                                      log))
        assert pinned.cached and pinned.digest == cold.digest
        rows["cold_build"].append(cold_s)
        rows["warm_branch"].append(warm_s)
        rows["warm_commit"].append(pinned_s)
        print(f"run {run + 1}/{runs}: cold {cold_s:.2f}s, warm {warm_s * 1000:.1f}ms, "
              f"warm by commit {pinned_s * 1000:.1f}ms", file=sys.stderr)
    return rows


def clone_seconds(sources: GitSourceCache, url: str, parent: Path) -> float:
    """Time to have the branch's files on disk: mirror clone or fetch, resolve, worktree."""
    started = time.perf_counter()
    resolved = sources.resolve(url, "main")
    with sources.worktree(resolved, parent):
        elapsed = time.perf_counter() - started
    return elapsed


def render(rows: dict[str, list[float]], runs: int) -> str:
    """The markdown table of medians, with ratios to the cold build."""
    med = {k: median(v) for k, v in rows.items()}
    ratio_branch = med["warm_branch"] / med["cold_build"] * 100
    ratio_commit = med["warm_commit"] / med["cold_build"] * 100
    verdict = "met" if ratio_branch < 2 else "NOT met"
    return "\n".join([
        "## Image builds (`image:build`)",
        "",
        f"Command: `.venv/bin/python bench/image_build.py --runs {runs} --write` "
        f"(this machine: {os.cpu_count()} cores, buildah "
        "`--storage-driver vfs --isolation chroot`, docker-registry on 127.0.0.1).",
        f"App: a static site of {SITE_FILES} files (~2.4 MB) with its own Dockerfile "
        "(busybox base, a RUN step that gzips the assets). Each run pushes a new commit, then "
        "measures side by side; medians of "
        f"{runs} runs.",
        "",
        "| measurement | median | ratio to cold build |",
        "|---|---:|---:|",
        f"| cold build (resolve, cache miss, checkout, buildah bud, push) | "
        f"{med['cold_build']:.2f} s | 100 % |",
        f"| warm request by branch (fetch, resolve, Dockerfile, manifest HEAD) | "
        f"{med['warm_branch'] * 1000:.1f} ms | {ratio_branch:.2f} % |",
        f"| warm request by commit sha (no fetch) | {med['warm_commit'] * 1000:.1f} ms | "
        f"{ratio_commit:.2f} % |",
        f"| clone, cold mirror (clone --mirror + worktree) | "
        f"{med['clone_cold_mirror'] * 1000:.1f} ms | |",
        f"| clone, warm mirror (fetch new commit + worktree) | "
        f"{med['clone_warm_mirror'] * 1000:.1f} ms | |",
        "",
        f"Target: a warm request under 2 % of the cold build: **{verdict}** "
        f"({ratio_branch:.2f} % by branch).",
    ])


if __name__ == "__main__":
    sys.exit(main())
