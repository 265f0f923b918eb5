"""A ClusterReader stand-in for unit tests: serves dicts, counts reads, fails on demand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envforge.errors import ClusterConnectionError, WorkloadNotFoundError


class FakeReader:
    description = "fake cluster"

    def __init__(self, app: dict[str, Any] | None = None,
                 deployments: list[dict[str, Any]] | None = None,
                 pods: list[dict[str, Any]] | None = None,
                 events: list[dict[str, Any]] | None = None,
                 logs: dict[tuple[str, bool], str] | None = None) -> None:
        self.app = app
        self.deployments_ = deployments or []
        self.pods_ = pods or []
        self.events = events or []
        self.logs = logs or {}
        self.reads = 0
        self.fail_reads = 0  # the next N application reads raise ClusterConnectionError
        self.before_read: Callable[[FakeReader], None] | None = None
        self.log_calls: list[tuple[str, str | None, int, bool]] = []

    def application(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        if self.before_read is not None:
            self.before_read(self)
        if self.fail_reads:
            self.fail_reads -= 1
            raise ClusterConnectionError("could not read: the API server did not answer")
        return self.app

    def deployments(self, namespace: str) -> list[dict[str, Any]]:
        return self.deployments_

    def pods(self, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        return self.pods_

    def ingresses(self, namespace: str) -> list[dict[str, Any]]:
        return []

    def events_for(self, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["involvedObject"]["name"] == name]

    def warning_events(self, namespace: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == "Warning"]

    def pod_log(self, namespace: str, pod: str, container: str | None, tail_lines: int,
                previous: bool = False) -> str:
        self.log_calls.append((pod, container, tail_lines, previous))
        if (pod, previous) not in self.logs:
            raise WorkloadNotFoundError(f"no {'previous ' if previous else ''}log for {pod}")
        lines = self.logs[(pod, previous)].splitlines(keepends=True)
        return "".join(lines[-tail_lines:] if tail_lines else lines)
