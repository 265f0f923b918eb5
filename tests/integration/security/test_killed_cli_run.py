"""A killed ``envforge run`` leaves no flow run RUNNING in Prefect: SIGTERM or SIGINT ends it
Cancelled (or Crashed), and after a kill -9 the next ``envforge run`` or ``envforge env list``
marks it Crashed, with its unfinished task runs; a live process's run is left alone.

The CLI runs in a subprocess against the session's real temporary Prefect server; the test
signals it once its flow run is RUNNING and the template's debug:wait step has started (read
from Prefect, not guessed with a sleep)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import write_template

pytestmark = pytest.mark.prefect

TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: pausing}
spec:
  owner: group:platform
  type: service
  parameters:
    properties:
      seconds: {type: number, default: 0}
  steps:
    - id: pause
      action: debug:wait
      input: {seconds: "${{ parameters.seconds }}"}
"""


@pytest.fixture
def template(tmp_path: Path) -> Path:
    return write_template(tmp_path / "pausing", TEMPLATE)


@pytest.fixture
def cli_env(prefect_server: None) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    assert api, "the harness sets PREFECT_API_URL"
    return {**os.environ, "PREFECT_API_URL": str(api),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def _cli() -> str:
    return str(Path(sys.executable).with_name("envforge"))


def _runs_of(template: Path) -> list[Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=200)
    return [r for r in runs if str((r.parameters or {}).get("template")) == str(template)]


def _task_runs(flow_run_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return list(client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[flow_run_id]))))


def _wait(condition: Callable[[], Any], what: str, process: subprocess.Popen[bytes] | None,
          seconds: float = 90) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if process is not None and process.poll() is not None:
            out = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"envforge run ended before {what}: {out}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


@pytest.fixture
def pausing_run(template: Path, cli_env: dict[str, str]
                ) -> Iterator[tuple[subprocess.Popen[bytes], Any]]:
    """``envforge run`` of the pausing template, once its step is running in Prefect."""
    process = subprocess.Popen([_cli(), "run", str(template), "--set", "seconds=300"],
                               env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        run = _wait(lambda: next((r for r in _runs_of(template)
                                  if r.state and r.state.is_running()), None),
                    "its flow run to be RUNNING", process)
        _wait(lambda: any(t.name == "pause" and t.state and t.state.is_running()
                          for t in _task_runs(run.id)), "its step to run", process)
        yield process, run
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        if process.stdout:
            process.stdout.close()


def _state(flow_run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_cli_run_ends_cancelled_or_crashed(
        pausing_run: tuple[subprocess.Popen[bytes], Any], signum: int) -> None:
    process, run = pausing_run
    process.send_signal(signum)
    # the run's state is reported at the signal, whatever the step still does
    state = _wait(lambda: (s := _state(run.id)) and s.is_final() and s, "a final state", None,
                  seconds=30)
    assert state.type.value in ("CANCELLED", "CRASHED"), state
    pause = next(t for t in _task_runs(run.id) if t.name == "pause")
    assert pause.state is not None and pause.state.is_final()  # not left RUNNING either
    if process.poll() is None:  # a second signal stops it without waiting for the step
        process.send_signal(signum)
    assert process.wait(timeout=30) != 0


def test_after_a_kill_9_the_next_cli_start_marks_the_run_crashed(
        pausing_run: tuple[subprocess.Popen[bytes], Any], template: Path,
        cli_env: dict[str, str]) -> None:
    process, run = pausing_run
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    time.sleep(0.5)
    assert _state(run.id).is_running()  # nobody could report it: still RUNNING

    done = subprocess.run([_cli(), "env", "list"], env=cli_env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert f"marked 1 flow run(s) of killed envforge commands crashed: {run.id}" in done.stderr
    state = _state(run.id)
    assert state.type.value == "CRASHED" and str(process.pid) in (state.message or "")
    pause = next(t for t in _task_runs(run.id) if t.name == "pause")
    assert pause.state is not None and pause.state.type.value == "CRASHED"

    # the next run starts clean: nothing more to mark
    again = subprocess.run([_cli(), "run", str(template)], env=cli_env, capture_output=True,
                           text=True, timeout=180, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "marked" not in again.stderr


def test_a_live_cli_runs_flow_run_is_left_alone(
        pausing_run: tuple[subprocess.Popen[bytes], Any], cli_env: dict[str, str]) -> None:
    """Another command while the run is alive does not touch it (pid + start time match)."""
    process, run = pausing_run
    done = subprocess.run([_cli(), "env", "list"], env=cli_env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0 and "marked" not in done.stderr
    assert _state(run.id).is_running() and process.poll() is None
