"""wait_until_healthy with a fake reader and a fake clock: bounded, tolerant of blips, and
failing with the diagnosis."""

from __future__ import annotations

import pytest

from envforge.cluster.wait import WaitPolicy, WaitTarget, wait_until_healthy
from envforge.errors import ClusterConnectionError, EnvironmentNotHealthyError, TemporaryError
from tests.unit.cluster.fake_reader import FakeReader
from tests.unit.cluster.objects import application, deployment, event, pod

TARGET = WaitTarget("pr-1", "pr-1")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def wait(reader: FakeReader, clock: FakeClock, **policy: float) -> object:
    return wait_until_healthy(reader, TARGET, WaitPolicy(**policy),  # type: ignore[arg-type]
                              clock=clock, sleep=clock.sleep)


def healthy_reader() -> FakeReader:
    return FakeReader(application("pr-1"), [deployment("web", "pr-1")],
                      [pod("web-a", "pr-1", "web")])


def test_healthy_at_once_reads_once() -> None:
    reader, clock = healthy_reader(), FakeClock()
    wait(reader, clock)
    assert reader.reads == 1 and clock.sleeps == []


def test_progressing_then_healthy() -> None:
    reader, clock = healthy_reader(), FakeClock()
    reader.app = application("pr-1", "OutOfSync", "Progressing", phase="Running")
    seen: list[list[str]] = []

    def becomes_healthy(r: FakeReader) -> None:
        if clock.now >= 5:
            r.app = application("pr-1")

    reader.before_read = becomes_healthy
    result = wait_until_healthy(reader, TARGET, WaitPolicy(timeout_seconds=60),  # type: ignore[arg-type]
                                on_change=lambda h: seen.append(h.problems()),
                                clock=clock, sleep=clock.sleep)
    assert result.healthy  # type: ignore[attr-defined]
    assert 5 <= clock.now < 60
    assert len(seen) == 1  # reported once: the problems did not change while waiting


def test_polls_are_bounded_and_back_off() -> None:
    reader, clock = healthy_reader(), FakeClock()
    reader.app = application("pr-1", health="Progressing")
    with pytest.raises(EnvironmentNotHealthyError):
        wait(reader, clock, timeout_seconds=100, poll_seconds=2, max_poll_seconds=10)
    assert reader.reads <= 100 / 2 + 1
    assert clock.sleeps[0] == 2 and max(clock.sleeps) == 10
    assert clock.now == pytest.approx(100)


def test_timeout_error_names_what_is_wrong_and_carries_events_and_logs() -> None:
    crashing = pod("web-a", "pr-1", "web", ready=False, waiting="CrashLoopBackOff", restarts=5)
    reader = FakeReader(
        application("pr-1", health="Degraded"), [deployment("web", "pr-1", available=0)],
        [crashing],
        events=[event("e1", "pr-1", "web-a", "BackOff", "Back-off restarting failed container",
                      count=7)],
        logs={("web-a", True): "starting\nKeyError: 'DATABASE_URL'\n"})
    with pytest.raises(EnvironmentNotHealthyError) as caught:
        wait(reader, FakeClock(), timeout_seconds=10)
    error = caught.value
    assert not isinstance(error, TemporaryError)
    text = str(error)
    assert "'pr-1' is not healthy after 10s" in text
    assert "Synced/Degraded" in text and "0/1 available" in text
    assert "BackOff (x7): Back-off restarting failed container" in text
    assert "KeyError: 'DATABASE_URL'" in text and "(previous instance)" in text
    assert error.diagnosis and error.problems


def test_a_connection_blip_is_tolerated() -> None:
    reader, clock = healthy_reader(), FakeClock()
    reader.fail_reads = 2
    wait(reader, clock, max_connection_failures=3)
    assert reader.reads == 3


def test_an_unreachable_cluster_fails_after_a_few_reads() -> None:
    reader, clock = healthy_reader(), FakeClock()
    reader.fail_reads = 100
    with pytest.raises(ClusterConnectionError, match=r"3 read.* in a row failed"):
        wait(reader, clock, max_connection_failures=3, timeout_seconds=600)
    assert reader.reads == 3 and clock.now < 10


def test_fail_early_once_failing_long_enough() -> None:
    crashing = pod("web-a", "pr-1", "web", ready=False, waiting="CrashLoopBackOff", restarts=1)
    reader = FakeReader(application("pr-1", health="Progressing"),
                        [deployment("web", "pr-1", available=0)], [crashing])
    clock = FakeClock()
    with pytest.raises(EnvironmentNotHealthyError, match="after 20s"):
        wait(reader, clock, timeout_seconds=600, poll_seconds=5, max_poll_seconds=5,
             fail_after_failing_seconds=20)
    assert clock.now == pytest.approx(20)


def test_failing_clock_restarts_when_the_pod_recovers() -> None:
    reader, clock = healthy_reader(), FakeClock()
    crashing = pod("web-a", "pr-1", "web", ready=False, waiting="CrashLoopBackOff", restarts=1)
    starting = pod("web-a", "pr-1", "web", ready=False, waiting="ContainerCreating",
                   phase="Pending")
    healthy_pods = reader.pods_
    # crash for 10s, start again for 10s, crash for 10s, then healthy: never 15s in a row
    timeline = [(10, [crashing]), (20, [starting]), (30, [crashing])]

    def play(r: FakeReader) -> None:
        r.pods_ = next((pods for until, pods in timeline if clock.now < until), healthy_pods)

    reader.before_read = play
    result = wait(reader, clock, timeout_seconds=100, poll_seconds=5, max_poll_seconds=5,
                  fail_after_failing_seconds=15)
    assert result.healthy  # type: ignore[attr-defined]
    assert clock.now == pytest.approx(30)
