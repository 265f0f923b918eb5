"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")


def git(*args: str, cwd: Path | None = None) -> str:
    """Run git for a test and return its output (raises on failure)."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@localhost"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@contextmanager
def started(start: Callable[[], T], stop: Callable[[T], None]) -> Iterator[T]:
    """``start()``'s service for a fixture, ``stop``ped afterwards. A service that cannot start
    (RuntimeError: a missing tool, a port or build failure) fails the test in its one line
    instead of a traceback."""
    try:
        service = start()
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield service
    finally:
        stop(service)


def remote_files(bare: Path, branch: str = "main") -> list[str]:
    """Files at the tip of ``branch`` in a bare repository ([] if the branch does not exist)."""
    try:
        out = git("--git-dir", str(bare), "ls-tree", "-r", "--name-only", branch)
    except subprocess.CalledProcessError:
        return []
    return sorted(out.splitlines())


def commit_count(bare: Path, branch: str = "main") -> int:
    try:
        return int(git("--git-dir", str(bare), "rev-list", "--count", branch))
    except subprocess.CalledProcessError:
        return 0


def reject_pushes(bare: Path, message: str = "pushes are frozen") -> None:
    """Install a pre-receive hook so the remote refuses every push, as a protected repo does."""
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    hook.chmod(0o755)


def write_template(directory: Path, template_yaml: str, files: dict[str, str] | None = None) -> Path:
    """A template directory with template.yaml and skeleton files (path -> content)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "template.yaml").write_text(textwrap.dedent(template_yaml).lstrip())
    for rel, content in (files or {}).items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return directory


def start_warm_runner(socket_path: Path, log: Path, env: Mapping[str, str] | None = None,
                      ready_count: int = 1, preload: tuple[str, ...] = ("flows",)
                      ) -> subprocess.Popen[bytes]:
    """envforge.launch.warm_runner as scripts/prefect-local.sh starts it (``--preload flows``), its
    output in ``log``; returns once it says ready and its socket exists (the caller stops it)."""
    from envforge.core.config import PROJECT_ROOT

    process = subprocess.Popen(
        [sys.executable, "-m", "envforge.launch.warm_runner", "--socket", str(socket_path),
         *(f"--preload={name}" for name in preload)],
        cwd=PROJECT_ROOT, env=dict(env) if env is not None else None,
        stdout=log.open("a"), stderr=subprocess.STDOUT)
    wait_warm_runner_ready(process, socket_path, log, ready_count)
    return process


def wait_warm_runner_ready(process: subprocess.Popen[bytes], socket_path: Path, log: Path,
                           ready_count: int = 1, timeout_s: float = 120) -> None:
    """Until ``log`` says ready ``ready_count`` times (a restart says it again) and the socket
    exists; fails with the log if the runner exits or does not get there in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.read_text().count(" ready on ") >= ready_count and socket_path.exists():
            return
        if process.poll() is not None:
            raise AssertionError(f"the warm runner exited: {log.read_text()}")
        time.sleep(0.1)
    raise AssertionError(f"the warm runner did not get ready: {log.read_text()}")
