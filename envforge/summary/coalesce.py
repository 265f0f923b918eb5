"""Many requests for the same refresh, one refresh: coalescing on one machine.

The fleet table is republished after every lifecycle run, and each republication reads every
environment (Git, Argo CD) and writes an artifact: seconds of work whose result only the last
one keeps. When 20 pull requests finish within a minute, 20 such refreshes queue behind each
other for the same answer. Here each run *requests* the refresh (a marker file), then tries a
lock without waiting: the run that holds it refreshes while requests are pending (each round
takes every request made before it started, so it covers them), the others return at once.

No request is lost: a request is marked before its run tries the lock, and the holder looks
for marks again after it lets go of the lock, taking the lock back when it finds one that no
one else took. A holder stops after ``budget_seconds`` of rounds so one run does not refresh
for a whole burst; it then leaves the mark for the next run that requests (or, on a quiet
machine, for the next lifecycle run). The state is two files in ``folder``; processes on
other machines (the Kubernetes work pool: a pod per run) each refresh for themselves.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

#: how long one run keeps refreshing for others before leaving the rest to the next run
COALESCE_BUDGET_SECONDS = 30.0


def coalesced(folder: Path, refresh: Callable[[], None],
              budget_seconds: float = COALESCE_BUDGET_SECONDS) -> int:
    """Request a refresh and run ``refresh`` for every pending request this process can take
    (see the module's docstring); returns how many refreshes this call ran (0: another
    process holds the lock and will cover this request)."""
    folder.mkdir(parents=True, exist_ok=True)
    pending, lock_path = folder / "pending", folder / "lock"
    pending.touch()  # before the lock: a holder that is refreshing sees it afterwards
    ran = 0
    started = time.monotonic()
    with open(lock_path, "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return ran  # the holder takes the mark after its round
            try:
                while _take(pending):
                    refresh()
                    ran += 1
                    if time.monotonic() - started >= budget_seconds:
                        return ran  # requests made meanwhile stay marked for the next run
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
            if not pending.exists():
                return ran
            # marked after our last take and before we let go: its run may have found the
            # lock held, so take the lock again (or leave it to whoever has it now)


def _take(pending: Path) -> bool:
    """Take every request made so far (one atomic unlink); False when there is none."""
    try:
        os.unlink(pending)
    except FileNotFoundError:
        return False
    return True
