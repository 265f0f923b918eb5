"""The one retry layer (envforge.core.retry): temporary errors retried within attempts and time,
permanent errors never, the error's own delay honoured, and an exhausted budget permanent."""

from __future__ import annotations

import pytest

from envforge.core.retry import RetryPolicy, retry_temporary
from envforge.errors import (
    ConfigurationError,
    PushConflictError,
    RetriesExhaustedError,
    TemporaryError,
)


class FakeClock:
    """Time that moves only when the retry layer sleeps (no real waiting in unit tests)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def test_a_persistent_temporary_error_stops_at_the_configured_attempts() -> None:
    clock, attempts = FakeClock(), []

    def lose(attempt: int) -> None:
        attempts.append(attempt)
        raise PushConflictError("lost a race")

    with pytest.raises(RetriesExhaustedError, match=r"push to r \(main\): gave up after 5 "
                                                    r"attempt\(s\) .*lost a race.*raise it") as info:
        retry_temporary(lose, RetryPolicy(max_attempts=5, max_seconds=600), "push to r (main)",
                        "raise it", sleep=clock.sleep, clock=clock)
    assert attempts == [1, 2, 3, 4, 5]
    assert len(clock.slept) == 4  # no wait after the last attempt
    # permanent, so Prefect's retry condition (TemporaryError only) does not retry it again
    assert not isinstance(info.value, TemporaryError)
    assert isinstance(info.value.__cause__, PushConflictError)


def test_a_permanent_error_is_not_retried() -> None:
    clock, attempts = FakeClock(), []

    def refuse(attempt: int) -> None:
        attempts.append(attempt)
        raise ConfigurationError("bad setting")

    with pytest.raises(ConfigurationError, match="bad setting"):
        retry_temporary(refuse, RetryPolicy(max_attempts=5), "x", sleep=clock.sleep,
                        clock=clock)
    assert attempts == [1] and clock.slept == []


def test_the_time_budget_ends_retries_before_the_attempts_run_out() -> None:
    clock, attempts = FakeClock(), []

    def busy(attempt: int) -> None:
        attempts.append(attempt)
        error = TemporaryError("busy")
        error.retry_after = 4.0  # the service asked for 4 s
        raise error

    with pytest.raises(RetriesExhaustedError, match=r"gave up after 3 attempt\(s\) in 8.0s"):
        retry_temporary(busy, RetryPolicy(max_attempts=100, max_seconds=10), "call",
                        sleep=clock.sleep, clock=clock)
    assert clock.slept == [4.0, 4.0] and attempts == [1, 2, 3]


def test_success_after_temporary_failures_returns_the_value() -> None:
    clock = FakeClock()

    def flaky(attempt: int) -> str:
        if attempt < 3:
            raise PushConflictError("lost")
        return f"done at {attempt}"

    policy = RetryPolicy(max_attempts=3, max_seconds=60, base_delay=0.05, max_delay=1.0)
    assert retry_temporary(flaky, policy, "x", sleep=clock.sleep, clock=clock) == "done at 3"
    assert len(clock.slept) == 2 and all(0 < s <= 1.0 for s in clock.slept)


def test_the_back_off_is_jittered_and_capped() -> None:
    policy = RetryPolicy(base_delay=0.05, max_delay=1.0)
    waits = [policy.backoff(attempt) for attempt in range(1, 12) for _ in range(20)]
    assert all(0.02 <= w <= 1.0 for w in waits)
    assert len({round(w, 6) for w in waits}) > 100  # spread out, not one fixed delay
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
