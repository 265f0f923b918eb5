"""Where the cores went during a benchmark: CPU seconds per group of processes.

    with CpuProfile() as profile:
        ...                      # the burst
    print(profile.report())

Reads ``/proc/<pid>/stat`` before and after (utime + stime of the process, plus cutime +
cstime: what its children used once it reaped them, so short-lived git, buildah and
flow-run engine processes count towards the long-lived process that started them) and, every
``interval`` seconds meanwhile, the processes born during the window (a process that is born
and gone between two samples counts only through its parent). Each process is put in a group
by its command line (the Prefect server, the worker, the warm runner and its engines,
PostgreSQL, Argo CD, ...); ``other`` is everything else on the machine, e.g. other sessions'
test suites. Linux only; no privileges needed beyond reading /proc.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

#: (group, substrings of the command line, any of which puts a process in it), first match wins
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("warm runner + flow-run engines", ("envforge.launch.warm_runner", "prefect.engine",
                                        "envforge.launch.flow_start")),
    ("Prefect worker", ("prefect worker", "prefect.cli worker", "worker start")),
    ("Prefect server", ("prefect server", "prefect.server", "uvicorn")),
    ("webhook server", ("webhook serve",)),
    ("PostgreSQL", ("postgres",)),
    ("Argo CD controller", ("argocd-application-controller",)),
    ("Argo CD repo-server", ("argocd-repo-server",)),
    ("Argo CD other", ("argocd", "redis-server")),
    ("kube-apiserver", ("kube-apiserver",)),
    ("etcd", ("etcd",)),
    ("kube controllers/scheduler", ("kube-controller-manager", "kube-scheduler")),
    ("kubelet/containerd/proxy", ("kubelet", "containerd", "kube-proxy", "runc")),
    ("Traefik", ("traefik",)),
    ("git", ("git ", "git-upload-pack", "git-receive-pack", "git-http-backend", "git daemon")),
    ("buildah/registry", ("buildah", "docker-registry", "registry serve", "skopeo")),
    ("OpenBao", ("bao ", "openbao")),
    ("benchmark (this process)", ("bench/fleet.py", "bench/headline.py")),
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    pid: int
    start: int  # start time in ticks since boot: (pid, start) names a process uniquely
    own: float  # utime + stime, seconds
    children: float  # cutime + cstime, seconds
    group: str


def _group(cmdline: str) -> str:
    for name, needles in GROUPS:
        if any(n in cmdline for n in needles):
            return name
    return "other"


def read_process(pid: int) -> ProcSample | None:
    """One process's CPU times, or None when it is gone (or not readable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            "utf-8", "replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "
    # fields[0] is field 3 (state): utime 14, stime 15, cutime 16, cstime 17, starttime 22
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    comm = stat[stat.find("(") + 1:stat.rfind(")")]
    return ProcSample(pid, int(fields[19]), (utime + stime) / CLOCK_TICKS,
                      (cutime + cstime) / CLOCK_TICKS, _group(cmdline or comm))


def snapshot() -> dict[tuple[int, int], ProcSample]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            sample = read_process(int(entry))
            if sample is not None:
                found[(sample.pid, sample.start)] = sample
    return found


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle since boot (all cores, /proc/stat)."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


@dataclass
class CpuProfile:
    """CPU seconds per group of processes between ``__enter__`` and ``__exit__``."""

    interval: float = 0.5
    before: dict[tuple[int, int], ProcSample] = field(default_factory=dict)
    latest: dict[tuple[int, int], ProcSample] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: own time of processes that ended in the window, by their own group (already counted
    #: in the group of the long-lived process that reaped them)
    passing: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    machine: float = 0.0
    loads: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> CpuProfile:
        self._started = time.monotonic()
        self._machine_before = machine_busy_seconds()
        self.before = snapshot()
        self.latest = dict(self.before)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        ticks = 0
        while not self._stop.wait(self.interval):
            self.latest.update(snapshot())
            ticks += 1
            if ticks % max(1, round(5 / self.interval)) == 0:  # the 1-minute load, every 5 s
                self.loads.append(os.getloadavg()[0])

    def load_range(self) -> str:
        """The 1-minute load average's lowest and highest value seen (every 5 s)."""
        if not self.loads:
            return f"{os.getloadavg()[0]:.1f}"
        return f"{min(self.loads):.1f}-{max(self.loads):.1f}"

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        after = snapshot()
        self.latest.update(after)
        self.wall = time.monotonic() - self._started
        self.machine = machine_busy_seconds() - self._machine_before
        totals: dict[str, float] = {}
        passing: dict[str, float] = {}
        for key, last in self.latest.items():
            first = self.before.get(key)
            if key in after:  # alive at the end: its own time and its reaped children's
                used = last.own + last.children - (first.own + first.children if first else 0)
                totals[last.group] = totals.get(last.group, 0.0) + max(0.0, used)
            else:  # gone: counted in the ancestor that reaped it; shown apart as seen
                used = last.own - (first.own if first else 0)
                passing[last.group] = passing.get(last.group, 0.0) + max(0.0, used)
        self.passing = passing
        self.seconds = totals

    def report(self) -> str:
        """A table: group, CPU seconds, share of the machine's busy time; then the totals."""
        lines = ["| processes | CPU s | share |", "|---|---|---|"]
        accounted = sum(self.seconds.values()) or 1.0
        for name, used in sorted(self.seconds.items(), key=lambda kv: -kv[1]):
            if used >= 0.05:
                lines.append(f"| {name} | {used:.1f} | {100 * used / accounted:.0f}% |")
        lines.append(f"\nwall {self.wall:.1f} s; machine busy {self.machine:.1f} CPU s of "
                     f"{self.wall * (os.cpu_count() or 1):.1f} ({os.cpu_count()} cores); "
                     f"accounted {accounted:.1f} CPU s")
        gone = ", ".join(f"{name} {used:.1f}" for name, used in
                         sorted(self.passing.items(), key=lambda kv: -kv[1]) if used >= 0.05)
        if gone:
            lines.append(f"of which processes that ended meanwhile (CPU s, by their own "
                         f"command): {gone}")
        return "\n".join(lines)
