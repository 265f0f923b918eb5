"""Logs of an environment's pods, by component, for `envforge env logs`.

A component is the Deployment a pod belongs to (or its ``app.kubernetes.io/component`` /
``name`` label). Without ``--follow`` each pod's tail is read once; with it, each pod's log is
streamed by its own thread into one queue, so several replicas interleave line by line. A
follow ends when every stream ends, when ``stop`` is set, or after ``max_seconds``.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from envforge.cluster.client import ClusterReader
from envforge.cluster.status import PodState, parse_deployment, parse_pod
from envforge.errors import ClusterApiError, ClusterError, WorkloadNotFoundError
from envforge.secrets.redaction import scrub

#: A followed log with no output for this long is treated as broken (real servers keep
#: the stream open; an idle app may log nothing for a while, hence generous).
READ_TIMEOUT_SECONDS = 3600.0


@dataclass(frozen=True)
class LogLine:
    pod: str
    container: str
    text: str


def select_pods(reader: ClusterReader, environment: str, namespace: str,
                component: str | None = None, running_only: bool = False) -> list[PodState]:
    """The environment's pods of ``component`` (all when None); names the components that
    exist when none match. ``running_only``: Running and not being deleted (a pod scaled away
    stays Running until its grace period ends; a shell there would be cut off)."""
    rollouts = tuple(parse_deployment(d) for d in reader.deployments(namespace))
    pods = [parse_pod(p, rollouts) for p in reader.pods(namespace)]
    chosen = [p for p in pods if component in (None, p.component)
              and (not running_only or (p.phase == "Running" and not p.terminating))]
    if chosen:
        return chosen
    components = sorted({p.component for p in pods if p.component})
    what = f"component {component!r}" if component else "any component"
    state = " running" if running_only else ""
    raise WorkloadNotFoundError(
        f"environment {environment!r} (namespace {namespace}) has no{state} pod of {what}; "
        f"components: {', '.join(components) or 'none (is it deployed? see envforge env status)'}")


def container_names(pod: PodState, container: str | None) -> list[str]:
    names = [c.name for c in pod.containers if not c.init]
    if container is None:
        return names or [""]
    if container not in names:
        raise WorkloadNotFoundError(f"pod {pod.name} has no container {container!r}; "
                                    f"containers: {', '.join(names) or 'none reported'}")
    return [container]


def read_logs(reader: ClusterReader, namespace: str, pods: list[PodState],
              container: str | None = None, tail_lines: int = 100,
              on_error: Callable[[str], None] | None = None) -> Iterator[LogLine]:
    """The last ``tail_lines`` lines of each pod's container(s), redacted. With ``on_error``,
    a container whose log cannot be read (the API server answers 400 while it is waiting to
    start, e.g. ContainerCreating or CrashLoopBackOff during a rollout) is reported there and
    the other pods are still read; without it, the first such error is raised."""
    for pod in pods:
        for name in container_names(pod, container):
            try:
                text = reader.pod_log(namespace, pod.name, name or None, tail_lines)
            except (ClusterApiError, WorkloadNotFoundError) as e:
                if on_error is None:
                    raise
                on_error(f"{pod.name}/{name or '?'}: {e}")
                continue
            for line in text.splitlines():
                yield LogLine(pod.name, name, scrub(line))


def follow_logs(reader: ClusterReader, namespace: str, pods: list[PodState],
                container: str | None = None, tail_lines: int | None = 10,
                stop: threading.Event | None = None, max_seconds: float | None = None,
                on_error: Callable[[str], None] | None = None) -> Iterator[LogLine]:
    """Lines of every pod's followed log as they come, redacted. Ends when every stream has
    ended, ``stop`` is set, or ``max_seconds`` have passed; the streams' sockets are then shut
    down, which is what unblocks a read waiting on a quiet log."""
    stop = stop or threading.Event()
    lines: queue.Queue[LogLine | None] = queue.Queue(maxsize=10_000)
    streams = [(pod.name, name) for pod in pods for name in container_names(pod, container)]
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    responses: list[Any] = []
    responses_lock = threading.Lock()

    def pump(pod: str, name: str) -> None:
        try:
            response = reader.stream_pod_log(namespace, pod, name or None, tail_lines,
                                             read_timeout=READ_TIMEOUT_SECONDS)
            with responses_lock:
                responses.append(response)
            if stop.is_set():
                return
            _pump(response, namespace, pod, name, stop, lines)
        except ClusterError as e:
            if on_error is not None and not stop.is_set():
                on_error(f"{pod}/{name}: {e}")
        finally:
            lines.put(None)

    threads = [threading.Thread(target=pump, args=s, daemon=True, name=f"log-{s[0]}")
               for s in streams]
    for thread in threads:
        thread.start()
    open_streams = len(threads)
    try:
        while open_streams and not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            try:
                item = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                open_streams -= 1
            else:
                yield item
    finally:
        stop.set()
        with responses_lock:
            for response in responses:
                with contextlib.suppress(Exception):
                    response.shutdown()
        for thread in threads:
            thread.join(timeout=2)


def _pump(response: Any, namespace: str, pod: str, container: str, stop: threading.Event,
          out: queue.Queue[LogLine | None]) -> None:
    buffer = b""
    try:
        while not stop.is_set():
            try:
                chunk = response.read1(65536)
            except Exception as e:  # urllib3 read timeout or protocol error, or our shutdown
                if stop.is_set():
                    return
                raise ClusterError(f"log stream of pod {namespace}/{pod} broke "
                                   f"({type(e).__name__}); run the command again") from e
            if not chunk:
                break
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                out.put(LogLine(pod, container, scrub(raw.decode("utf-8", "replace"))))
        if buffer and not stop.is_set():
            out.put(LogLine(pod, container, scrub(buffer.decode("utf-8", "replace"))))
    finally:
        with contextlib.suppress(Exception):
            response.release_conn()
