"""`env logs` on pods that have not started, and exec's stdin at EOF (the parts a real kubelet
decides, which kwok in the integration tests does not reproduce)."""

from __future__ import annotations

import io
import json
import os
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from envforge.cluster import shell
from envforge.cluster.client import cluster_errors
from envforge.cluster.logs import read_logs
from envforge.cluster.status import parse_pod
from envforge.errors import ClusterApiError
from tests.unit.cluster.fake_reader import FakeReader
from tests.unit.cluster.objects import pod

#: What a kubelet answers (through the API server) for a container that never ran.
WAITING = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "BadRequest",
           "code": 400, "message": 'container "app" in pod "web-2" is waiting to start: '
                                   "ContainerCreating"}


class StartingPodReader(FakeReader):
    def pod_log(self, namespace: str, pod: str, container: str | None, tail_lines: int,
                previous: bool = False) -> str:
        if pod == "web-2":
            error = ApiException(status=400, reason="Bad Request")
            error.body = json.dumps(WAITING)
            with cluster_errors(f"read the log of pod {namespace}/{pod}"):
                raise error
        return super().pod_log(namespace, pod, container, tail_lines, previous)


def test_a_pod_waiting_to_start_is_reported_and_the_others_are_read() -> None:
    reader = StartingPodReader(logs={("web-1", False): "a\nb\n"})
    pods = [parse_pod(pod("web-1", "ns", "web"), ()),
            parse_pod(pod("web-2", "ns", "web", ready=False, waiting="ContainerCreating",
                          phase="Pending"), ())]
    problems: list[str] = []
    lines = list(read_logs(reader, "ns", pods, on_error=problems.append))
    assert [line.text for line in lines] == ["a", "b"]
    assert len(problems) == 1 and problems[0].startswith("web-2/app: ")
    assert "400 Bad Request" in problems[0] and "is waiting to start: ContainerCreating" in (
        problems[0])
    with pytest.raises(ClusterApiError, match="waiting to start"):  # no callback: raised
        list(read_logs(reader, "ns", pods))


class FakeExec:
    """Records what pump sends; the remote command ends once stdin is closed."""

    subprotocol = "v5.channel.k8s.io"

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.open = True

    def is_open(self) -> bool:
        return self.open

    def update(self, timeout: float) -> None:
        pass

    def read_channel(self, channel: int) -> str:
        if channel == 3 and not self.open:
            return json.dumps({"status": "Success"})
        return ""

    def write_stdin(self, data: str) -> None:
        self.sent.append(("stdin", data))

    def close_channel(self, channel: int) -> None:
        self.sent.append(("close", channel))
        self.open = False  # like `cat`: ends at EOF


def test_stdin_is_closed_on_v5_at_eof() -> None:
    client = FakeExec()
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"to cat\n")
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as stdin:
        assert shell.pump(client, stdin, io.BytesIO(), io.BytesIO(), poll_seconds=0) == 0
    assert client.sent == [("stdin", "to cat\n"), ("close", 0)]


def test_a_shell_never_picks_a_pod_being_deleted() -> None:
    from envforge.cluster.cli import pick_shell_target
    from envforge.errors import WorkloadNotFoundError

    leaving = pod("web-old", "env", "web")
    leaving["metadata"]["deletionTimestamp"] = "2026-11-24T02:00:00Z"  # scaled away, still Running
    reader = FakeReader(pods=[leaving])
    with pytest.raises(WorkloadNotFoundError, match="no running pod"):
        pick_shell_target(reader, "env", "env", None, None)
    reader.pods_.append(pod("web-new", "env", "web", ready=False))
    assert pick_shell_target(reader, "env", "env", None, None)[0] == "web-new"
