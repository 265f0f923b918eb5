"""envforge.launch.flow_start and envforge.launch.warm_runner: the flow-run command the process worker runs.

Real processes, real Unix sockets and signals; Prefect's real engine module runs in the forked
process. The flow run ids here are made up, so the engine either refuses them at once (an id
that is not a UUID) or blocks on an API that accepts connections and never answers, which is
what lets a test signal a flow run that is still going.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from envforge.core.config import PROJECT_ROOT
from tests.helpers import start_warm_runner, wait_warm_runner_ready

pytestmark = pytest.mark.slow


class Runner:
    """A warm runner started for a test, stopped by pid."""

    def __init__(self, tmp: Path, preload: tuple[str, ...] = ("flows",)) -> None:
        self.socket = tmp / "warm" / "socket"
        self.log = tmp / "warm.log"
        self.process = start_warm_runner(self.socket, self.log, preload=preload)

    def wait_ready(self, after: int = 0) -> None:
        """Until the log says ready (for the (after+1)-th time) and the socket exists."""
        wait_warm_runner_ready(self.process, self.socket, self.log, ready_count=after + 1)

    def engine_pid(self, run_id: str) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.search(rf"flow run {re.escape(run_id)}: engine pid (\d+)",
                              self.log.read_text())
            if found:
                return int(found.group(1))
            time.sleep(0.05)
        raise AssertionError(f"no engine for {run_id}: {self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    started = Runner(tmp_path_factory.mktemp("warm-runner"))
    yield started
    started.stop()
    assert not started.socket.exists()


@pytest.fixture
def silent_api() -> Iterator[str]:
    """An API address that accepts connections and never answers (the engine waits on it)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"


def flow_start(*args: str, socket_path: Path | None, api: str = "http://127.0.0.1:9/api",
               **extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PREFECT_") and k != "ENVFORGE_WARM_RUNNER_SOCKET"}
    env.update({"PREFECT_API_URL": api, **extra,
                "PREFECT_HOME": str(Path(tempfile.gettempdir()) / "envforge-test-flow-start")})
    if socket_path is not None:
        env["ENVFORGE_WARM_RUNNER_SOCKET"] = str(socket_path)
    return subprocess.Popen([sys.executable, "-m", "envforge.launch.flow_start", *args], env=env,
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or "State:\tZ" in _status(pid):
            return True
        time.sleep(0.05)
    return False


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""


def test_without_a_warm_runner_the_flow_run_starts_cold_as_prefects_engine() -> None:
    quiet = flow_start("not-a-flow-run-id", socket_path=None)
    _, err = quiet.communicate(timeout=60)
    assert quiet.returncode == 1
    assert "Invalid flow run id" in err and "starting the flow run cold" not in err

    missing = Path("/nonexistent/envforge-warm/socket")
    told = flow_start("not-a-flow-run-id", socket_path=missing)
    _, err = told.communicate(timeout=60)
    assert told.returncode == 1
    assert f"starting the flow run cold (no warm runner at {missing}" in err
    assert "Invalid flow run id" in err  # and then it ran Prefect's engine anyway


def test_the_engine_runs_forked_with_the_callers_stdio_and_exit_status(runner: Runner) -> None:
    run_id = f"not-a-uuid-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    done = flow_start(run_id, socket_path=runner.socket)
    _, err = done.communicate(timeout=60)
    assert done.returncode == 1, err
    assert "Invalid flow run id" in err and run_id in err  # the engine wrote to our stderr
    assert "starting the flow run cold" not in err
    engine = runner.engine_pid(run_id)
    assert f"flow run {run_id}: engine pid {engine} exit 1" in runner.log.read_text()
    assert time.monotonic() - started < 30


def test_the_engine_ignores_sigpipe_as_a_python_interpreter_does(runner: Runner,
                                                                silent_api: str) -> None:
    """A connection the other side closed is an error the engine's clients handle, never its
    death by SIGPIPE (a flow run crashed with exit -13 under load when the engine had it at
    its default action)."""
    run_id = str(uuid.uuid4())
    caller = flow_start(run_id, socket_path=runner.socket, api=silent_api)
    try:
        engine = runner.engine_pid(run_id)
        time.sleep(2)  # the engine sets its signal dispositions right after the fork
        found = re.search(r"SigIgn:\t([0-9a-f]+)", _status(engine))
        assert found, _status(engine)
        assert int(found.group(1), 16) & (1 << (signal.SIGPIPE - 1))
    finally:
        caller.send_signal(signal.SIGTERM)
        caller.communicate(timeout=60)


def test_signals_reach_the_engine_and_its_end_is_the_callers(runner: Runner,
                                                             silent_api: str) -> None:
    run_id = str(uuid.uuid4())
    caller = flow_start(run_id, socket_path=runner.socket, api=silent_api)
    engine = runner.engine_pid(run_id)
    assert not gone(engine, within_s=1.0)  # it waits on the silent API
    caller.send_signal(signal.SIGTERM)
    caller.communicate(timeout=30)
    assert caller.returncode != 0
    assert gone(engine, within_s=10)
    log = runner.log.read_text()
    assert re.search(rf"flow run {run_id}: engine pid {engine} (exit [1-9]\d*|killed 15)", log)


def test_a_killed_caller_takes_its_engine_process_group_with_it(runner: Runner,
                                                                silent_api: str) -> None:
    run_id = str(uuid.uuid4())
    caller = flow_start(run_id, socket_path=runner.socket, api=silent_api)
    engine = runner.engine_pid(run_id)
    assert not gone(engine, within_s=1.0)
    caller.kill()  # SIGKILL: nothing is forwarded, the connection just closes
    caller.communicate(timeout=30)
    assert gone(engine, within_s=10)
    assert f"flow run {run_id}: the worker's process went away" in runner.log.read_text()


def test_edited_code_is_never_run_from_a_stale_import(tmp_path: Path) -> None:
    # a package only this runner preloads: moving envforge's own files would make the warm
    # runners of tests on other workers (make test runs several) start their flow runs cold
    runner = Runner(tmp_path, preload=("flows", "tests.warm_probe"))
    source = PROJECT_ROOT / "tests" / "warm_probe" / "__init__.py"
    before = source.stat()
    try:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
        first = flow_start("not-a-uuid-stale", socket_path=runner.socket)
        _, err = first.communicate(timeout=120)
        # it re-executed itself with the new code before serving this caller, which waited
        # on the socket (kept across the exec) instead of starting cold
        assert "starting the flow run cold" not in err and "Invalid flow run id" in err
        runner.wait_ready(after=1)
        log = runner.log.read_text()
        restarted = log.index("source file(s) changed")
        assert restarted < [m.start() for m in re.finditer(r"\bready on ", log)][1] \
            < log.index("flow run not-a-uuid-stale: engine pid")
        again = flow_start("not-a-uuid-fresh", socket_path=runner.socket)
        _, err = again.communicate(timeout=60)
        assert "starting the flow run cold" not in err and "Invalid flow run id" in err
        assert runner.engine_pid("not-a-uuid-fresh")
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
        runner.stop()


def test_the_socket_is_private_to_its_user(runner: Runner) -> None:
    assert runner.socket.stat().st_mode & 0o777 == 0o600
    assert runner.socket.parent.stat().st_mode & 0o777 == 0o700


def test_a_socket_path_too_long_for_unix_sockets_is_refused_in_one_line(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120) / "socket"
    done = subprocess.run([sys.executable, "-m", "envforge.launch.warm_runner", "--socket", str(deep)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "is at most 107" in lines[0] and "shorter --socket" in lines[0]
