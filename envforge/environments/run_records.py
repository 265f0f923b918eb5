"""Flow runs the CLI runs in its own process (``envforge run``), so that a killed CLI never
leaves a flow run RUNNING in Prefect.

When the flow run starts, ``$ENVFORGE_HOME/state/flow-runs/<id>.json`` records its id, the
Prefect API it reports to and the CLI's process identity (pid + start time + boot id:
envforge.core.processes, so a reused pid does not pass for it); the record goes
when the run ends. SIGTERM or SIGINT during the run reports it Cancelled at once (a second
signal ends the process without waiting for running steps) and then lets Prefect's engine
unwind as usual. A kill -9 cannot be caught: the next ``envforge run`` or ``envforge env
list`` finds the record of a process that is gone and marks that flow run, and its task runs
still pending or running, Crashed.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError

from envforge.core.processes import ProcessIdentity, current_process
from envforge.gitops.record import utc_now

log = logging.getLogger("envforge.run_records")


class FlowRunRecord(BaseModel):
    """One flow run this machine's CLI runs in-process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flowRunId: str
    apiUrl: str
    process: ProcessIdentity
    startedAt: datetime


def prefect_api_url() -> str | None:
    """The Prefect API this process reports to (None: a temporary server of its own)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def records_dir(home: Path) -> Path:
    return home / "state" / "flow-runs"


def record_flow_run(home: Path, flow_run_id: str, api_url: str) -> FlowRunRecord:
    """Write the record of a flow run starting in this process (atomically: a rename)."""
    record = FlowRunRecord(flowRunId=flow_run_id, apiUrl=api_url, process=current_process(),
                           startedAt=utc_now())
    folder = records_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{flow_run_id}.{os.getpid()}.tmp"
    tmp.write_text(record.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(folder / f"{flow_run_id}.json")
    return record


def forget_flow_run(home: Path, flow_run_id: str) -> None:
    (records_dir(home) / f"{flow_run_id}.json").unlink(missing_ok=True)


def read_records(home: Path) -> list[FlowRunRecord]:
    folder = records_dir(home)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            found.append(FlowRunRecord.model_validate_json(path.read_text(encoding="utf-8")))
        except (OSError, ValidationError):
            log.warning("ignoring %s: not a flow-run record envforge wrote", path.name)
    return found


def crash_orphaned_runs(home: Path) -> list[str]:
    """Mark Crashed the recorded flow runs on the Prefect API this process talks to whose CLI
    process is gone; their records are removed. Returns their ids. Records of runs on another
    API are left for a command that talks to it; an unreachable API is logged. Prefect is
    only loaded when there is such a record."""
    gone = [r for r in read_records(home) if not r.process.alive()]
    if not gone:
        return []
    api_url = prefect_api_url()
    orphans = [r for r in gone if api_url and r.apiUrl == api_url]
    if not orphans:
        return []
    from prefect.client.orchestration import get_client

    crashed = []
    with get_client(sync_client=True) as client:
        for record in orphans:
            try:
                if _crash(client, record):
                    crashed.append(record.flowRunId)
            except Exception as e:  # the API is down: try again at the next start
                log.warning("could not mark flow run %s crashed: %s", record.flowRunId,
                            str(e).splitlines()[0] if str(e) else type(e).__name__)
                continue
            forget_flow_run(home, record.flowRunId)
    return crashed


def _crash(client: Any, record: FlowRunRecord) -> bool:
    """Crashed for the run and its unfinished task runs, unless it already ended."""
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed

    run_id = UUID(record.flowRunId)
    try:
        run = client.read_flow_run(run_id)
    except ObjectNotFound:
        return False
    if run.state is not None and run.state.is_final():
        return False
    message = (f"the envforge CLI ({record.process.describe()}) running it was killed; "
               "marked crashed by a later envforge command")
    _end_flow_run(client, run_id, lambda: Crashed(message=message),
                  ("RUNNING", "PENDING", "SCHEDULED"))
    return True


def _end_flow_run(client: Any, run_id: UUID, state: Callable[[], Any],
                  unfinished: tuple[str, ...]) -> None:
    """Put the run's task runs still in one of the ``unfinished`` state types, then the run
    itself, in ``state()`` (Crashed, Cancelled), forced: the engine that would have ended them
    is gone or going."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    task_runs = client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
        task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(
            any_=[StateType(name) for name in unfinished]))))
    for task_run in task_runs:
        client.set_task_run_state(task_run.id, state(), force=True)
    client.set_flow_run_state(run_id, state(), force=True)


def stop_reporting_handler(flow_run_id: str) -> Callable[[int, FrameType | None], Any]:
    """A SIGTERM/SIGINT handler for the flow run's duration: the first signal reports the
    run Cancelled (and its unfinished task runs) and then does what the handler it replaced
    did (Prefect's raises TerminationSignal, SIGINT's KeyboardInterrupt), so the engine
    unwinds; a second signal ends the process at once (steps still running are not waited
    for)."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> Any:
        if received:
            os._exit(128 + signum)
        received.append(signum)
        name = signal.Signals(signum).name
        print(f"envforge: {name}: stopping flow run {flow_run_id} (again to stop at once)",
              file=sys.stderr, flush=True)
        try:
            _report_cancelled(flow_run_id, name)
        except Exception as e:  # reporting must not keep the process from stopping
            log.warning("could not report flow run %s cancelled: %s", flow_run_id, e)
        before = previous.get(signal.Signals(signum))
        if callable(before):
            return before(signum, frame)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    return handler


def _report_cancelled(flow_run_id: str, signal_name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    message = f"envforge run stopped by {signal_name}"
    with get_client(sync_client=True) as client:
        _end_flow_run(client, UUID(flow_run_id), lambda: Cancelled(message=message),
                      ("RUNNING", "PENDING"))
