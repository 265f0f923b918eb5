"""The diagnosis: bounded, redacted, and honest about what it could not read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from envforge.cluster.diagnose import DiagnosisLimits, diagnose
from envforge.cluster.status import read_environment_health
from envforge.secrets.redaction import default_redactor
from tests.unit.cluster.fake_reader import FakeReader
from tests.unit.cluster.objects import application, deployment, event, pod


@pytest.fixture
def secret() -> Iterator[str]:
    value = "s3cr3t-db-password-42"
    default_redactor().register(value)
    yield value
    default_redactor().forget_all()


def crashing_reader(log: str, previous: bool = True) -> FakeReader:
    return FakeReader(
        application("pr-1", health="Degraded"), [deployment("web", "pr-1", available=0)],
        [pod("web-a", "pr-1", "web", ready=False, waiting="CrashLoopBackOff", restarts=2)],
        events=[event(f"e{i}", "pr-1", "web-a", "BackOff", f"event number {i}",
                      at=f"2026-11-24T02:00:{i:02d}Z") for i in range(12)],
        logs={("web-a", previous): log})


def test_log_tail_and_events_are_bounded(secret: str) -> None:
    log = "".join(f"line {i}\n" for i in range(100))
    reader = crashing_reader(log)
    health = read_environment_health(reader, "pr-1", "pr-1")  # type: ignore[arg-type]
    text = diagnose(reader, health, DiagnosisLimits(events=3, log_lines=5))  # type: ignore[arg-type]
    assert "line 99" in text and "line 95" in text and "line 94" not in text
    assert "event number 11" in text and "event number 9" in text
    assert "event number 8" not in text
    assert reader.log_calls[0] == ("web-a", "app", 5, True)


def test_secret_values_in_logs_are_masked(secret: str) -> None:
    reader = crashing_reader(f"connecting with password={secret}\n")
    health = read_environment_health(reader, "pr-1", "pr-1")  # type: ignore[arg-type]
    text = diagnose(reader, health)  # type: ignore[arg-type]
    assert secret not in text
    assert "password=********" in text


def test_previous_log_missing_falls_back_to_current() -> None:
    reader = crashing_reader("current instance output\n", previous=False)
    health = read_environment_health(reader, "pr-1", "pr-1")  # type: ignore[arg-type]
    text = diagnose(reader, health)  # type: ignore[arg-type]
    assert "current instance output" in text
    assert [call[3] for call in reader.log_calls] == [True, False]


def test_no_log_at_all_is_said() -> None:
    reader = crashing_reader("x\n")
    reader.logs = {}
    health = read_environment_health(reader, "pr-1", "pr-1")  # type: ignore[arg-type]
    assert "log of app: not available" in diagnose(reader, health)  # type: ignore[arg-type]


def test_healthy_environment_has_no_diagnosis() -> None:
    reader = FakeReader(application("pr-1"), [deployment("web", "pr-1")],
                        [pod("web-a", "pr-1", "web")])
    health = read_environment_health(reader, "pr-1", "pr-1")  # type: ignore[arg-type]
    assert diagnose(reader, health) == ""  # type: ignore[arg-type]


def test_a_rollout_without_pods_shows_its_replica_set_warnings() -> None:
    quota = event("rs.1", "pr-1", "web-7d9f8", "FailedCreate",
                  'pods "web-7d9f8-x" is forbidden: exceeded quota: envforge-quota', count=5)
    quota["involvedObject"]["kind"] = "ReplicaSet"
    other = event("rs.2", "pr-1", "api-55c4d", "FailedCreate", "about another deployment")
    other["involvedObject"]["kind"] = "ReplicaSet"
    reader = FakeReader(application("pr-1", health="Progressing"),
                        [deployment("web", "pr-1", available=0, updated=0)], [],
                        events=[quota, other])
    health = read_environment_health(reader, "pr-1", "pr-1")  # type: ignore[arg-type]
    text = diagnose(reader, health)  # type: ignore[arg-type]
    assert "FailedCreate (x5): ReplicaSet web-7d9f8: pods" in text
    assert "exceeded quota" in text and "another deployment" not in text
