"""Why an environment is unhealthy, for a person: each failing pod's state, its recent
Events and the last lines of its containers' logs.

Everything read from the cluster passes through ``envforge.secrets.redaction.scrub`` (an app
that logs its own database password must not put it in a flow's error), and the summary is
bounded: at most ``max_pods`` pods, ``events`` events and ``log_lines`` lines each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envforge.cluster.client import ClusterReader
from envforge.cluster.status import ContainerState, EnvironmentHealth, PodState
from envforge.errors import ClusterError
from envforge.secrets.redaction import scrub

INDENT = "    "


@dataclass(frozen=True)
class DiagnosisLimits:
    max_pods: int = 3
    events: int = 8
    log_lines: int = 20
    line_chars: int = 300


def diagnose(reader: ClusterReader, health: EnvironmentHealth,
             limits: DiagnosisLimits | None = None, include_problems: bool = True) -> str:
    """A multi-line summary of what is wrong, or "" when nothing is (``include_problems``
    False: only the evidence, for a message that lists the problems already). Reading
    failures are reported in place: a diagnosis never hides the error it explains."""
    limits = limits or DiagnosisLimits()
    lines = [f"environment {health.environment} (namespace {health.namespace}):"]
    if include_problems:
        lines += [f"  {problem}" for problem in health.problems()]
    lines += _workload_events(reader, health, limits)
    pods = health.failing_pods()
    for pod in pods[:limits.max_pods]:
        lines.append(f"  pod {pod.name} ({pod.component or 'no component'}), {pod.phase}:")
        lines += [f"{INDENT}{c.describe()}" for c in pod.containers if not c.ready or c.reason]
        lines += _events(reader, health.namespace, pod, limits)
        for container in _containers_to_read(pod):
            lines += _log_tail(reader, health.namespace, pod, container, limits)
    if len(pods) > limits.max_pods:
        lines.append(f"  … and {len(pods) - limits.max_pods} more failing pod(s): "
                     + ", ".join(p.name for p in pods[limits.max_pods:]))
    if len(lines) == 1:
        return ""
    return scrub("\n".join(_clip(line, limits.line_chars) for line in lines))


def _workload_events(reader: ClusterReader, health: EnvironmentHealth,
                     limits: DiagnosisLimits) -> list[str]:
    """Warnings about Deployments and ReplicaSets of unfinished rollouts: when no pod could
    be made (quota, admission), no pod has events to show."""
    stuck = [r.name for r in health.rollouts if not r.complete]
    if not stuck:
        return []
    try:
        events = reader.warning_events(health.namespace)
    except ClusterError as e:
        return [f"  warning events: could not be read ({e})"]

    def about_stuck_rollout(event: dict[str, Any]) -> bool:
        involved = event.get("involvedObject") or {}
        subject = str(involved.get("name") or "")
        return involved.get("kind") in ("Deployment", "ReplicaSet") and any(
            subject == name or subject.startswith(name + "-") for name in stuck)

    mine = [e for e in events if about_stuck_rollout(e)]
    if not mine:
        return []
    return ["  workload warnings:"] + [_event_line(e, "    ") for e in mine[-limits.events:]]


def _event_line(event: dict[str, Any], indent: str) -> str:
    count = event.get("count") or 1
    times = f" (x{count})" if count > 1 else ""
    message = " ".join(str(event.get("message") or "").split())
    involved = event.get("involvedObject") or {}
    subject = f"{involved.get('kind')} {involved.get('name')}: " if involved.get("kind") in (
        "Deployment", "ReplicaSet") else ""
    return (f"{indent}{event.get('type') or 'Normal'} {event.get('reason') or '?'}{times}: "
            f"{subject}{message}")


def _events(reader: ClusterReader, namespace: str, pod: PodState,
            limits: DiagnosisLimits) -> list[str]:
    try:
        events = reader.events_for(namespace, "Pod", pod.name)
    except ClusterError as e:
        return [f"{INDENT}events: could not be read ({e})"]
    if not events:
        return [f"{INDENT}events: none"]
    return [f"{INDENT}recent events:"] + [_event_line(e, INDENT + "  ")
                                          for e in events[-limits.events:]]


def _containers_to_read(pod: PodState) -> list[ContainerState]:
    """Containers whose logs explain the failure: the unhealthy ones, else all of them."""
    bad = [c for c in pod.containers if not c.ready or c.reason or c.restarts]
    return bad or list(pod.containers)


def _log_tail(reader: ClusterReader, namespace: str, pod: PodState, container: ContainerState,
              limits: DiagnosisLimits) -> list[str]:
    """The last lines of a container's log; for a restarting container, the previous
    (crashed) instance's log, since the waiting one has written nothing yet."""
    previous = container.restarts > 0 and container.state != "running"
    try:
        text = reader.pod_log(namespace, pod.name, container.name, limits.log_lines, previous)
    except ClusterError:
        if not previous:
            return [f"{INDENT}log of {container.name}: not available"]
        try:
            text = reader.pod_log(namespace, pod.name, container.name, limits.log_lines)
        except ClusterError:
            return [f"{INDENT}log of {container.name}: not available"]
    tail = text.splitlines()[-limits.log_lines:]
    if not tail:
        return [f"{INDENT}log of {container.name}: empty"]
    which = " (previous instance)" if previous else ""
    return ([f"{INDENT}last {len(tail)} log line(s) of {container.name}{which}:"]
            + [f"{INDENT}  | {line}" for line in tail])


def _clip(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[:limit - 1] + "…"
