"""The one in-process retry layer: a temporary error retried within a budget of attempts and
time, waiting what the error asks for (``retry_after``) or a jittered back-off.

kopf's split, applied once: a :class:`~envforge.errors.TemporaryError` may succeed if the
operation runs again; anything else propagates at once. When the budget runs out, the last
temporary error becomes a permanent :class:`~envforge.errors.RetriesExhaustedError`, so the
layer above (Prefect's task retries, which retry only temporary errors) does not multiply the
attempts: a persistent push race makes at most ``max_attempts`` attempts, not attempts times
task retries. Callers build the policy from their settings (the git publisher from
``ENVFORGE_GIT_PUSH_ATTEMPTS`` and ``ENVFORGE_GIT_PUSH_RETRY_SECONDS``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from envforge.errors import RetriesExhaustedError, TemporaryError

T = TypeVar("T")
logger = logging.getLogger("envforge.retry")


@dataclass(frozen=True)
class RetryPolicy:
    """How long a temporary error is retried: at most ``max_attempts`` attempts and
    ``max_seconds`` from the first; between attempts the error's ``retry_after``, else full
    jitter over a capped exponential window (``base_delay * 2**attempt``, at most
    ``max_delay``), so many racing writers spread out."""

    max_attempts: int = 30
    max_seconds: float = 120.0
    base_delay: float = 0.05
    max_delay: float = 1.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_seconds < 0:
            raise ValueError("a retry policy needs at least one attempt and a budget >= 0 s")

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based) when the error names none."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** attempt)
        return random.uniform(min(0.02, ceiling), ceiling)


def retry_temporary(operation: Callable[[int], T], policy: RetryPolicy, describe: str,
                    hint: str = "try again later",
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> T:
    """``operation(attempt)`` until it returns; a TemporaryError is retried within ``policy``,
    any other error propagates unchanged. The RetriesExhaustedError names ``describe`` (what
    was retried, e.g. "push to <url> (main)") and ``hint`` (what to do)."""
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return operation(attempt)
        except TemporaryError as e:
            elapsed = clock() - started
            wait = e.retry_after if e.retry_after is not None else policy.backoff(attempt)
            if attempt >= policy.max_attempts or elapsed + wait > policy.max_seconds:
                raise RetriesExhaustedError(
                    f"{describe}: gave up after {attempt} attempt(s) in {elapsed:.1f}s ({e}); "
                    f"{hint}") from e
            logger.debug("%s: attempt %d failed (%s); next in %.2fs", describe, attempt, e, wait)
            sleep(wait)
