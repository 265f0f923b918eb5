"""Which process holds a piece of work, and whether it still lives, without being fooled by a
reused process id.

A pid alone is not an identity: after a kill -9 the kernel hands the number to the next
process. ``/proc/<pid>/stat`` field 22 (the start time in clock ticks since boot) and the
kernel's boot id make it one: the same pid with another start time, or any pid after a
reboot, is another process. Used by the create intents (envforge.environments.intents), the
CLI's flow-run records (envforge.environments.run_records), run workspaces
(envforge.run.workspaces) and partial cache entries (envforge.capabilities.caches).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class ProcessIdentity(BaseModel):
    """One process on one machine since one boot."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    pid: int
    #: clock ticks after boot at which the process started (None where /proc is missing)
    startTicks: int | None = None
    bootId: str | None = None

    def alive(self) -> bool:
        """Whether this very process still runs. A process on another host cannot be checked
        from here: it counts as alive (never clean up after a run that may still be working)."""
        if self.host != os.uname().nodename:
            return True
        if self.bootId is not None and self.bootId != boot_id():
            return False
        if self.startTicks is None:
            return pid_exists(self.pid)
        return process_start_ticks(self.pid) == self.startTicks

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"


def current_process() -> ProcessIdentity:
    """The identity of the calling process."""
    pid = os.getpid()
    return ProcessIdentity(host=os.uname().nodename, pid=pid, startTicks=process_start_ticks(pid),
                           bootId=boot_id())


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat``, or None when there is no such (live) process. A zombie
    (killed, not yet reaped) counts as gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces or ')'
    fields = text[text.rfind(")") + 2:].split()
    if not fields or fields[0] == "Z":
        return None
    try:
        return int(fields[19])  # field 22 counted from field 3
    except (IndexError, ValueError):
        return None


def boot_id() -> str | None:
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def pid_exists(pid: int) -> bool:
    """Whether some process (of any user) holds ``pid`` now; it may not be the one that held it
    earlier: compare :func:`process_start_ticks` for that."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
