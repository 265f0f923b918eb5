"""Run workspaces in the temp folder, and removing those of runs that were killed.

A workspace is ``<tmp>/envforge-workspaces-<uid>/<pid>-<process start>-<random>-<template>``:
a run that ends removes its own; one that was killed (SIGKILL, OOM, a reboot of the worker)
cannot, so the next run removes every workspace whose process is gone, or whose pid now
belongs to another process (the recorded start time differs). Linux reads the start time from
/proc; elsewhere the pid alone decides.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from envforge.core.processes import pid_exists, process_start_ticks
from envforge.errors import ConfigurationError

logger = logging.getLogger("envforge.run.workspaces")
_ENTRY = re.compile(r"(?P<pid>\d+)-(?P<start>\d+)-[a-z0-9_]+-.*")


def workspaces_root() -> Path:
    """The folder holding every run workspace of this user."""
    return Path(tempfile.gettempdir()) / f"envforge-workspaces-{os.getuid()}"


def _start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 where /proc has none)."""
    return process_start_ticks(pid) or 0


def _alive(pid: int, start: int) -> bool:
    """Whether the run that named its workspace ``<pid>-<start>-...`` still runs: the same pid
    with the same start time (a reused pid is another process)."""
    if start == 0:
        return pid_exists(pid)
    return process_start_ticks(pid) == start


def remove_stale_workspaces(root: Path | None = None) -> list[Path]:
    """Remove the workspaces (and their ``.undo`` siblings) of runs whose process is gone;
    returns what was removed."""
    root = root or workspaces_root()
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        match = _ENTRY.fullmatch(entry.name.removesuffix(".undo"))
        if match is None or _alive(int(match["pid"]), int(match["start"])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    if removed:
        logger.info("removed %d workspace(s) of runs that were killed: %s", len(removed),
                    ", ".join(p.name for p in removed[:5]))
    return removed


def check_root(root: Path) -> None:
    """The workspaces folder must be this user's own private folder: in a shared temp folder
    another user could have made it first (or put a link there) to read or change every
    run's files."""
    info = os.lstat(root)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ConfigurationError(f"{root} is not a folder (a link or a file is there): remove "
                                 "it, or set TMPDIR to a folder of your own")
    if info.st_uid != os.getuid():
        raise ConfigurationError(f"{root} belongs to another user (uid {info.st_uid}): remove "
                                 "it, or set TMPDIR to a folder of your own")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(root, 0o700)  # ours, made too open by hand: close it


def new_workspace(template_name: str) -> Path:
    """A fresh private workspace for one run; stale ones of killed runs are removed first."""
    root = workspaces_root()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_root(root)
    try:
        remove_stale_workspaces(root)
    except OSError as e:  # cleaning up must never stop a run
        logger.warning("could not remove stale workspaces in %s: %s", root, e)
    pid = os.getpid()
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", template_name)[:60]
    prefix = f"{pid}-{_start_time(pid)}-"
    return Path(tempfile.mkdtemp(prefix=prefix, suffix=f"-{safe_name}", dir=root))
