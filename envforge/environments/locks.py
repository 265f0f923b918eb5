"""One run per environment name at a time: a Prefect global concurrency limit of 1 named
``envforge-env-<name>``, created on first use. A second run waits at most
ENVFORGE_ENV_LOCK_TIMEOUT seconds (the settings' ``lifecycle.env_lock_timeout``), then fails
with EnvironmentLockTimeoutError saying so.

The slot is held through a Prefect lease (renewed every :data:`RENEW_SECONDS` while the
holder lives; Prefect's shortest lease, :data:`LEASE_SECONDS`, so a holder that vanishes
without trace frees it within a minute instead of Prefect's default five). Who holds it is
recorded beside it, in the Prefect variable ``envforge-lock-<name>``: the lease, the holder's
flow run and its process (pid + start time + boot id, envforge.core.processes). A waiter
that finds the slot taken reads that record, and when the holder's flow run has ended
(Crashed, Cancelled, Failed, even Completed: a run that ended holds nothing) or its process on
this machine is gone (kill -9), it releases exactly that lease at once and takes the slot.
A live holder, or one on another machine whose run is still running, is waited for.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any
from uuid import UUID

from envforge.core.processes import ProcessIdentity, current_process
from envforge.errors import EnvironmentLockTimeoutError

logger = logging.getLogger("envforge.locks")
#: Prefect's shortest lease (its API refuses less); renewed well before it runs out
LEASE_SECONDS = 60.0
RENEW_SECONDS = 15.0
#: how often a waiter asks again (and looks at the holder)
POLL_SECONDS = 1.0


def lock_name(environment: str) -> str:
    """The concurrency limit that serialises runs of ``environment``."""
    return f"envforge-env-{environment}"


def holder_variable(environment: str) -> str:
    """The Prefect variable naming who holds ``environment``'s lock."""
    return f"envforge-lock-{environment}"


@contextmanager
def environment_lock(name: str, timeout_seconds: float) -> Iterator[None]:
    """Hold the environment's lock for the block (waiting up to ``timeout_seconds``, freeing
    a lock whose holder has ended or died at once)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    limit = lock_name(name)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(limit)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it first
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=limit, limit=1))
        flow_run = _current_flow_run()
        lease = _acquire(client, name, timeout_seconds, flow_run)
        record = {"lease": str(lease), "flowRun": flow_run,
                  "process": current_process().model_dump(mode="json")}
        _write_holder(client, name, record)
        stop = threading.Event()
        # the caller's context (Prefect's settings live in context variables: the same API)
        context = contextvars.copy_context()
        renewer = threading.Thread(target=context.run, args=(_renew, lease, stop), daemon=True,
                                   name=f"envforge-lock-{name}")
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join(timeout=10)
            _forget_holder(client, name, str(lease))
            client.release_concurrency_slots_with_lease(lease)


def _acquire(client: Any, name: str, timeout_seconds: float, flow_run: str | None) -> UUID:
    import httpx
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder

    holder = (ConcurrencyLeaseHolder(type="flow_run", id=UUID(flow_run))
              if flow_run else None)
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            answer = client.increment_concurrency_slots_with_lease(
                names=[lock_name(name)], slots=1, mode="concurrency",
                lease_duration=LEASE_SECONDS, holder=holder)
            return UUID(str(answer.json()["lease_id"]))
        except httpx.HTTPStatusError as e:
            if e.response.status_code != 423:  # 423 Locked: someone holds it
                raise
        if free_stale_holder(client, name) is not None:
            continue  # its holder had ended or died: take the slot now
        left = deadline - time.monotonic()
        if left <= 0:
            raise EnvironmentLockTimeoutError(
                f"environment {name!r} is being changed by another run and stayed locked for "
                f"{timeout_seconds:g} s; try again when that run has finished")
        time.sleep(min(POLL_SECONDS, left))


def free_stale_holder(client: Any, name: str) -> str | None:
    """Release the lease of ``name``'s recorded holder if that holder has ended or died; why
    it was freed, or None when there is no record or the holder may still be working."""
    from prefect.exceptions import ObjectNotFound

    variable = client.read_variable_by_name(holder_variable(name))
    record = getattr(variable, "value", None)
    if not isinstance(record, dict) or not isinstance(record.get("lease"), str):
        return None
    why = None
    flow_run = record.get("flowRun")
    if isinstance(flow_run, str):
        try:
            state = client.read_flow_run(UUID(flow_run)).state
        except (ObjectNotFound, ValueError):
            state, why = None, f"its flow run {flow_run} is gone"
        if state is not None and state.is_final():
            why = f"its flow run {flow_run} is {state.type.value}"
    if why is None:
        try:
            process = ProcessIdentity.model_validate(record.get("process"))
        except ValueError:
            return None
        if not process.alive():
            why = f"its {process.describe()} is gone"
    if why is None:
        return None
    try:
        lease = UUID(record["lease"])
    except ValueError:
        return None
    client.release_concurrency_slots_with_lease(lease)  # a lease already gone: no-op
    _forget_holder(client, name, record["lease"])
    logger.warning(
        "environment %r: freed the lock of a run that no longer holds it (%s)", name, why)
    return why


def _write_holder(client: Any, name: str, record: dict[str, Any]) -> None:
    from prefect.client.schemas.actions import VariableCreate, VariableUpdate
    from prefect.exceptions import ObjectAlreadyExists

    try:
        client.create_variable(VariableCreate(name=holder_variable(name), value=record))
    except ObjectAlreadyExists:  # a holder that vanished left its record: ours now
        client.update_variable(VariableUpdate(name=holder_variable(name), value=record))


def _forget_holder(client: Any, name: str, lease: str) -> None:
    """Remove the holder record if it still names ``lease`` (not the next holder's)."""
    from prefect.exceptions import ObjectNotFound

    variable = client.read_variable_by_name(holder_variable(name))
    record = getattr(variable, "value", None)
    if isinstance(record, dict) and record.get("lease") == lease:
        with suppress(ObjectNotFound):
            client.delete_variable_by_name(holder_variable(name))


def _renew(lease: UUID, stop: threading.Event) -> None:
    """Keep the lease alive while the holder lives (its own client: one per thread)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        while not stop.wait(RENEW_SECONDS):
            try:
                client.renew_concurrency_lease(lease, LEASE_SECONDS)
            except Exception as e:  # tried again next round: the lease has 45 s of slack
                logger.warning(
                    "could not renew the environment lock's lease %s (%s: %s); if this lasts "
                    "%g s the lock lapses", lease, type(e).__name__, str(e)[:200],
                    LEASE_SECONDS)


def _current_flow_run() -> str | None:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = getattr(context, "flow_run", None)
    return str(run.id) if run is not None else None
