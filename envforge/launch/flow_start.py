"""The command the process worker runs for each flow run: hand it to a warm runner, or start
Prefect's engine cold.

    <project>/.venv/bin/python -m envforge.launch.flow_start

Prefect's process worker starts every flow run as a new interpreter (``python -m
prefect.runner._workspace_supervisor``, which then starts ``python -m prefect.engine``): two
imports of Prefect (about 1.6 s each here) and then the flow's own modules, before the flow's
first line runs. That is most of the time from a pull request's webhook to its environment in
Git (bench/webhook_latency.py). A deployment whose ``command`` job variable is this module
skips the supervisor (the engine runs the deployment's pull steps itself) and, when a warm
runner is listening (envforge.launch.warm_runner, started by scripts/prefect-local.sh beside the
worker), runs the engine in a process forked from it, where Prefect and envforge are already
imported.

This module imports only the standard library: it is started for every flow run. Whatever
goes wrong with the warm runner (none configured, not running, refused, code changed since it
started), the flow run still starts, cold, exactly as ``python -m prefect.engine`` would:
the hand-over is an optimisation, never a dependency.

What the process worker sees is this process: its stdin, stdout and stderr are passed to the
forked engine, signals it receives (TERM, INT, HUP) are forwarded there, and it exits with
the engine's exit status (or dies of the engine's signal). If this process is killed, the warm
runner kills the engine's process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from typing import NoReturn

#: the warm runner's Unix socket; unset means "always start cold"
SOCKET_ENV = "ENVFORGE_WARM_RUNNER_SOCKET"
#: protocol version, checked by the runner
PROTOCOL = 1
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
CONNECT_TIMEOUT_S = 2.0
#: how long to wait for the runner's first answer once connected: it re-warms (a few seconds,
#: more under load) before it accepts when its source files changed, and a cold start instead
#: costs each waiting flow run 4-6 s of CPU; a runner that is not running refuses at once
FIRST_ANSWER_TIMEOUT_S = 90.0


def cold_start(reason: str) -> NoReturn:
    """Replace this process with Prefect's engine, as the worker would have started it."""
    if reason:
        print(f"envforge: starting the flow run cold ({reason})", file=sys.stderr, flush=True)
    argv = [sys.executable, "-m", "prefect.engine", *sys.argv[1:]]
    os.execv(sys.executable, argv)


def _read_line(conn: socket.socket, buffer: bytearray) -> str | None:
    """The next newline-terminated message, or None when the runner closed the connection."""
    while b"\n" not in buffer:
        chunk = conn.recv(4096)  # a forwarded signal interrupts it; PEP 475 retries
        if not chunk:
            return None
        buffer.extend(chunk)
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode()


def request(path: str) -> tuple[socket.socket, str]:
    """Connect, send this process's argv, environment, cwd and stdio; the runner's first answer."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(CONNECT_TIMEOUT_S)
    conn.connect(path)
    body = json.dumps({"protocol": PROTOCOL, "argv": sys.argv[1:], "cwd": os.getcwd(),
                       "env": dict(os.environ)}).encode()
    conn.settimeout(FIRST_ANSWER_TIMEOUT_S)
    socket.send_fds(conn, [len(body).to_bytes(8, "big")], [0, 1, 2])
    conn.sendall(body)
    buffer = bytearray()
    first = _read_line(conn, buffer)
    conn.settimeout(None)
    if buffer:  # the runner never sends more before its first line is answered
        raise ConnectionError("unexpected data from the warm runner")
    return conn, first or ""


def main() -> NoReturn:
    path = os.environ.get(SOCKET_ENV, "")
    if not path:
        cold_start("")
    try:
        conn, answer = request(path)
    except OSError as e:
        cold_start(f"no warm runner at {path}: {e.strerror or e}")
    if not answer.startswith("started "):
        conn.close()
        cold_start(f"the warm runner answered {answer or 'nothing'!r}")

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(f"signal {signum}\n".encode())

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, forward)
    buffer = bytearray()
    while True:
        line = _read_line(conn, buffer)
        if line is None:  # the runner went away without a status: report a crash
            os._exit(70)
        kind, _, value = line.partition(" ")
        if kind == "exit":
            os._exit(int(value))
        if kind == "killed":
            number = int(value)
            signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)
            os._exit(128 + number)


if __name__ == "__main__":
    main()
