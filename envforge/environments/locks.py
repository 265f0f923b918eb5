"""One run per environment name at a time: a Prefect global concurrency limit of 1 named
``envforge-env-<name>``, created on first use. A second run waits at most
ENVFORGE_ENV_LOCK_TIMEOUT seconds (the settings' ``lifecycle.env_lock_timeout``), then fails
with EnvironmentLockTimeoutError saying so."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from envforge.errors import EnvironmentLockTimeoutError


def lock_name(environment: str) -> str:
    """The concurrency limit that serialises runs of ``environment``."""
    return f"envforge-env-{environment}"


@contextmanager
def environment_lock(name: str, timeout_seconds: float) -> Iterator[None]:
    """Hold the environment's lock for the block (waiting up to ``timeout_seconds``)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    limit = lock_name(name)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(limit)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it first
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=limit, limit=1))
    try:
        with concurrency(limit, occupy=1, timeout_seconds=timeout_seconds, strict=True):
            yield
    except TimeoutError as e:
        raise EnvironmentLockTimeoutError(
            f"environment {name!r} is being changed by another run and stayed locked for "
            f"{timeout_seconds:g} s; try again when that run has finished"
        ) from e
