"""An interactive shell in a running container, through the Kubernetes exec API (what the
terminal on an internal tool's web page does).

The local terminal goes into raw mode (every key goes to the container, Ctrl-C included, and
the container's tty echoes), its size is sent on the resize channel at start and on SIGWINCH,
and the exit code of the remote command becomes ours. Without a terminal (piped stdin) it runs
without a tty. The websocket comes from ``kubernetes.stream.stream``; the copy loop is here.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import termios
import tty
from collections.abc import Iterator
from typing import Any, BinaryIO

from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, RESIZE_CHANNEL, STDIN_CHANNEL

from envforge.cluster.client import ClusterReader, cluster_errors
from envforge.errors import ClusterApiError

DEFAULT_COMMAND = ["/bin/sh", "-c", "command -v bash >/dev/null && exec bash || exec sh"]


def open_exec(reader: ClusterReader, namespace: str, pod: str, container: str | None,
              command: list[str], tty_mode: bool) -> Any:
    """The exec websocket (kubernetes.stream.ws_client.WSClient), not yet read from."""
    with cluster_errors(f"exec into pod {namespace}/{pod}", reader.description):
        return stream(reader.core.connect_get_namespaced_pod_exec, pod, namespace,
                      container=container, command=command, stdin=True, stdout=True,
                      stderr=True, tty=tty_mode, _preload_content=False)


def send_resize(client: Any, columns: int, rows: int) -> None:
    client.write_channel(RESIZE_CHANNEL, json.dumps({"Width": columns, "Height": rows}))


def exit_code(client: Any) -> int:
    """The remote command's exit code from the status channel (0 when it reported none)."""
    raw = client.read_channel(ERROR_CHANNEL)
    if not raw:
        return 0
    status = json.loads(raw)
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return int(cause.get("message") or 1)
    raise ClusterApiError(f"exec failed: {status.get('message') or status}")


def pump(client: Any, stdin: BinaryIO, stdout: BinaryIO, stderr: BinaryIO,
         poll_seconds: float = 0.1) -> int:
    """Copy stdin to the container and its output back until the remote side ends; the
    remote command's exit code. Works on any file objects with a file descriptor."""
    in_fd = stdin.fileno()
    stdin_open = True
    while client.is_open():
        client.update(timeout=poll_seconds)
        out = client.read_channel(1)
        if out:
            stdout.write(out.encode() if isinstance(out, str) else out)
            stdout.flush()
        err = client.read_channel(2)
        if err:
            stderr.write(err.encode() if isinstance(err, str) else err)
            stderr.flush()
        if stdin_open and select.select([in_fd], [], [], 0)[0]:
            data = os.read(in_fd, 4096)
            if data:
                client.write_stdin(data.decode("utf-8", "replace"))
            else:
                # EOF: v5.channel.k8s.io can say so (a CLOSE message for channel 0), so a
                # command reading stdin ends; on v4 there is no way to, and a tty shell sees
                # the user's Ctrl-D instead. close_channel is a no-op on v4.
                stdin_open = False
                client.close_channel(STDIN_CHANNEL)
    return exit_code(client)


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode on a terminal for the duration (restored even on error)."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def interactive_shell(reader: ClusterReader, namespace: str, pod: str, container: str | None,
                      command: list[str] | None = None) -> int:
    """Open a shell (or ``command``) in the container on this process's terminal; returns
    the remote exit code."""
    use_tty = sys.stdin.isatty() and sys.stdout.isatty()
    client = open_exec(reader, namespace, pod, container, command or DEFAULT_COMMAND, use_tty)
    previous_handler: Any = None
    try:
        if use_tty:
            out_fd = sys.stdout.fileno()
            size = os.get_terminal_size(out_fd)  # the terminal's, not $COLUMNS/$LINES
            send_resize(client, size.columns, size.lines)

            def on_resize(signum: int, frame: Any) -> None:
                new = os.get_terminal_size(out_fd)
                send_resize(client, new.columns, new.lines)

            previous_handler = signal.signal(signal.SIGWINCH, on_resize)
        terminal = raw_terminal(sys.stdin.fileno()) if use_tty else contextlib.nullcontext()
        with terminal, cluster_errors(f"exec into pod {namespace}/{pod}", reader.description):
            return pump(client, sys.stdin.buffer, sys.stdout.buffer, sys.stderr.buffer)
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGWINCH, previous_handler)
        client.close()
