"""An environment's lock is freed at once when its holder is gone: a holder process killed
with SIGKILL, or a holder whose flow run has Crashed; a live holder is still waited for.

Real parts: the session's Prefect server (leases, variables, flow runs) and a real process
killed with SIGKILL. Every wait allowed here is shorter than the lease (60 s), so a lock that
was not freed by envforge cannot be taken in time: the check cannot pass by the lease running
out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from envforge.environments.locks import (
    LEASE_SECONDS,
    environment_lock,
    holder_variable,
    lock_name,
)
from envforge.errors import EnvironmentLockTimeoutError

pytestmark = pytest.mark.usefixtures("prefect_server")
WAIT = 25.0  # well under LEASE_SECONDS
HOLDER = """
import sys, time
from envforge.environments.locks import environment_lock
with environment_lock(sys.argv[1], 30):
    print("held", flush=True)
    time.sleep(600)
"""


def _api_env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    return env


def _variable(name: str) -> object:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = client.read_variable_by_name(holder_variable(name))
    return getattr(found, "value", None)


def test_a_killed_holders_lock_is_taken_at_once() -> None:
    assert WAIT < LEASE_SECONDS
    name = f"lock-{uuid.uuid4().hex[:8]}"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, name], env=_api_env(),
                              stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[3])
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"  # blocks until it holds the lock
        record = _variable(name)
        assert isinstance(record, dict) and record["process"]["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with environment_lock(name, WAIT):
        record = _variable(name)
        assert isinstance(record, dict) and record["process"]["pid"] == os.getpid()
    assert _variable(name) is None  # released: no holder recorded


def test_a_crashed_flow_runs_lock_is_taken_at_once() -> None:
    """The holder's process may live on (a worker), but its flow run has Crashed: the run
    ended, so its lease is released."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import VariableCreate
    from prefect.states import Crashed

    from envforge.core.processes import current_process

    @flow(name="lock-holder")
    def lock_holder() -> None:  # only its flow run is needed: it never runs
        pass

    name = f"lock-{uuid.uuid4().hex[:8]}"
    with environment_lock(name, WAIT):
        pass  # creates the limit
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(lock_holder)
        answer = client.increment_concurrency_slots_with_lease(
            names=[lock_name(name)], slots=1, mode="concurrency",
            lease_duration=LEASE_SECONDS)
        lease = answer.json()["lease_id"]
        client.create_variable(VariableCreate(name=holder_variable(name), value={
            "lease": str(lease), "flowRun": str(run.id),
            "process": current_process().model_dump(mode="json")}))  # alive: not the reason
        # its run is still Scheduled: waited for
        with pytest.raises(EnvironmentLockTimeoutError), environment_lock(name, 2):
            pass
        client.set_flow_run_state(run.id, Crashed(), force=True)
    with environment_lock(name, WAIT):
        pass


def test_a_live_holder_is_waited_for() -> None:
    name = f"lock-{uuid.uuid4().hex[:8]}"
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with environment_lock(name, WAIT):
            holding.set()
            release.wait(timeout=60)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(timeout=30)
        with pytest.raises(EnvironmentLockTimeoutError, match="stayed locked for 2 s"), \
                environment_lock(name, 2):
            pass
        record = _variable(name)
        assert isinstance(record, dict)  # the live holder's record was not taken away
    finally:
        release.set()
        thread.join(timeout=30)
    with environment_lock(name, WAIT):
        pass


def test_a_held_lease_is_renewed_on_the_same_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """The renewal thread talks to the server the lock was taken on (Prefect's settings are
    context variables: a bare thread would not see them) and the server accepts it."""
    import time

    from prefect.client.orchestration import SyncPrefectClient

    from envforge.environments import locks

    answers: list[int] = []
    renew = SyncPrefectClient.renew_concurrency_lease

    def recording(self: SyncPrefectClient, lease_id: uuid.UUID, lease_duration: float) -> object:
        response = renew(self, lease_id, lease_duration)
        answers.append(response.status_code)
        return response

    monkeypatch.setattr(SyncPrefectClient, "renew_concurrency_lease", recording)
    monkeypatch.setattr(locks, "RENEW_SECONDS", 0.2)
    name = f"lock-{uuid.uuid4().hex[:8]}"
    with environment_lock(name, WAIT):
        deadline = time.monotonic() + 20
        while len(answers) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert len(answers) >= 2 and set(answers) == {204}
