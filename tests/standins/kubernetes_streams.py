"""Streaming subresources of the Kubernetes stand-in: followed pod logs and pod exec.

``GET …/pods/<name>/log?follow=true`` streams the log (chunked) and then whatever
:meth:`KubernetesStandin.set_pod_log` appends, until the pod is deleted, the stand-in stops,
``end_log_follow`` is called, or 30 s pass. ``…/pods/<name>/exec`` speaks the exec websocket
protocol (``v4.channel.k8s.io``: one channel byte per message; 0 stdin, 1 stdout, 2 stderr,
3 status, 4 resize) against a tiny fake shell: it echoes what is typed (a tty does), and
understands ``echo …``, ``size`` (the last resize), ``exit [code]``; anything else is "not
found". Replace the program with :func:`set_exec_program`.

The stand-in routes here through one hook in ``KubernetesHandler._handle``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from collections.abc import Callable
from typing import Any

from tests.standins.kubernetes_store import ApiError

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTOCOLS = ("v4.channel.k8s.io", "v5.channel.k8s.io")
STDIN, STDOUT, STDERR, STATUS, RESIZE = 0, 1, 2, 3, 4
FOLLOW_LIMIT_SECONDS = 30.0

#: A program gets the command, a function writing to stdout, and an iterator of stdin lines;
#: it returns the exit code. Resize events are recorded in ``ExecSession.sizes``.
ExecProgram = Callable[["ExecSession"], int]


def wants_stream(method: str, path: str, query: dict[str, str], headers: Any) -> bool:
    """Whether this request is one of the streams served here (the hook's test)."""
    if method not in ("GET", "POST") or "/pods/" not in path:
        return False
    if path.endswith("/exec"):
        return True
    return path.endswith("/log") and query.get("follow") in ("true", "1")


def serve_stream(handler: Any, path: str, query: dict[str, str], raw_query: str) -> None:
    parts = path.strip("/").split("/")  # api v1 namespaces NS pods NAME SUB
    namespace, pod = parts[3], parts[5]
    standin = handler.standin
    store = standin.store
    with store.lock:
        store.get(store.resource("", "pods"), namespace, pod)  # 404 before anything is sent
        standin.requests.append((handler.command, path))
    if path.endswith("/log"):
        _follow_log(handler, namespace, pod, int(query.get("tailLines") or 0))
    else:
        commands = [v for k, v in _pairs(raw_query) if k == "command"]
        _exec(handler, namespace, pod, commands, query)


def set_exec_program(standin: Any, program: ExecProgram) -> None:
    standin.exec_program = program


def end_log_follow(standin: Any) -> None:
    """Make followed logs end (as when the container stops)."""
    standin.log_follow_ended = True


# --- followed logs -------------------------------------------------------------------------

def _follow_log(handler: Any, namespace: str, pod: str, tail: int) -> None:
    standin = handler.standin
    store = standin.store
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    with store.lock:
        text = store.pod_logs.get((namespace, pod), "")
    lines = text.splitlines(keepends=True)
    sent = len(text)
    first = "".join(lines[-tail:] if tail else lines)
    deadline = time.monotonic() + FOLLOW_LIMIT_SECONDS
    try:
        _chunk(handler, first.encode())
        while not standin.stopping and not getattr(standin, "log_follow_ended", False) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
            with store.lock:
                if ("", "pods", namespace, pod) not in store.objects:
                    break
                text = store.pod_logs.get((namespace, pod), "")
            if len(text) > sent:
                _chunk(handler, text[sent:].encode())
                sent = len(text)
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass
    handler.close_connection = True


def _chunk(handler: Any, data: bytes) -> None:
    if data:
        handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        handler.wfile.flush()


# --- exec over a websocket -----------------------------------------------------------------

class ExecSession:
    """One exec: the command, stdin as it arrives, stdout, and the terminal sizes seen."""

    def __init__(self, handler: Any, command: list[str], tty: bool) -> None:
        self.handler = handler
        self.command = command
        self.tty = tty
        self.sizes: list[tuple[int, int]] = []
        self.pending = b""

    def write(self, text: str, channel: int = STDOUT) -> None:
        _send_frame(self.handler.wfile, bytes([channel]) + text.encode())

    def read_line(self) -> str | None:
        """The next line typed (echoed as it comes when a tty), None when stdin closed."""
        while b"\r" not in self.pending and b"\n" not in self.pending:
            message = _recv_message(self.handler.rfile, self.handler.wfile)
            if message is None:
                return None
            channel, data = message[0], message[1:]
            if channel == RESIZE:
                size = json.loads(data or b"{}")
                self.sizes.append((int(size.get("Width", 0)), int(size.get("Height", 0))))
            elif channel == STDIN:
                if self.tty:
                    self.write(data.decode("utf-8", "replace").replace("\r", "\r\n"))
                self.pending += data
        cut = min(i for i in (self.pending.find(b"\r"), self.pending.find(b"\n")) if i >= 0)
        line, self.pending = self.pending[:cut], self.pending[cut + 1:].lstrip(b"\n")
        return line.decode("utf-8", "replace")


def fake_shell(session: ExecSession) -> int:
    """echo, size, exit; a shell when the command is one, else runs the command once."""
    interactive = session.command[:1] and session.command[0].rsplit("/", 1)[-1] in (
        "sh", "bash", "ash") and "-c" not in session.command
    if not interactive:
        script = session.command[-1] if "-c" in session.command else " ".join(session.command)
        return _run_line(session, script)
    while True:
        session.write("$ ")
        line = session.read_line()
        if line is None:
            return 0
        if line.strip().startswith("exit"):
            words = line.split()
            return int(words[1]) if len(words) > 1 else 0
        _run_line(session, line)


def _run_line(session: ExecSession, line: str) -> int:
    words = line.split()
    if not words:
        return 0
    if words[0] == "echo":
        session.write(" ".join(words[1:]) + "\r\n")
    elif words[0] == "size":
        cols, rows = session.sizes[-1] if session.sizes else (0, 0)
        session.write(f"{cols}x{rows}\r\n")
    elif words[0] == "exit":
        return int(words[1]) if len(words) > 1 else 0
    else:
        session.write(f"sh: {words[0]}: not found\r\n", STDERR)
        return 127
    return 0


def _exec(handler: Any, namespace: str, pod: str, command: list[str],
          query: dict[str, str]) -> None:
    key = handler.headers.get("Sec-WebSocket-Key")
    offered = [p.strip() for p in (handler.headers.get("Sec-WebSocket-Protocol") or
                                   "").split(",")]
    protocol = next((p for p in offered if p == PROTOCOLS[0]), None)
    if not key or handler.headers.get("Upgrade", "").lower() != "websocket":
        raise ApiError(400, "BadRequest", "Upgrade request required")
    if protocol is None:
        raise ApiError(400, "BadRequest", f"none of the offered protocols {offered} is served")
    if not command:
        raise ApiError(400, "BadRequest", "you must specify at least 1 command")
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    handler.send_header("Sec-WebSocket-Protocol", protocol)
    handler.end_headers()
    handler.wfile.flush()
    handler.connection.settimeout(30)
    session = ExecSession(handler, command, query.get("tty") in ("true", "1"))
    handler.standin.exec_sessions = [*getattr(handler.standin, "exec_sessions", []), session]
    program: ExecProgram = getattr(handler.standin, "exec_program", fake_shell)
    try:
        code = program(session)
        if code == 0:
            status: dict[str, Any] = {"metadata": {}, "status": "Success"}
        else:
            status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                      "message": f"command terminated with non-zero exit code: {code}",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        _send_frame(handler.wfile, bytes([STATUS]) + json.dumps(status).encode())
        _send_frame(handler.wfile, struct.pack("!H", 1000), opcode=0x8)
    except (TimeoutError, OSError):
        pass
    handler.close_connection = True


def _send_frame(wfile: Any, payload: bytes, opcode: int = 0x2) -> None:
    header = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        header += bytes([n])
    elif n < 65536:
        header += bytes([126]) + struct.pack("!H", n)
    else:
        header += bytes([127]) + struct.pack("!Q", n)
    wfile.write(header + payload)
    wfile.flush()


def _recv_message(rfile: Any, wfile: Any) -> bytes | None:
    """The next data message from the client (masked frames, fragments joined); None on
    close or EOF. Pings are answered."""
    message = b""
    while True:
        head = rfile.read(2)
        if len(head) < 2:
            return None
        fin, opcode = head[0] & 0x80, head[0] & 0x0F
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", rfile.read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", rfile.read(8))[0]
        mask = rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(rfile.read(length)))
        if opcode == 0x8:
            return None
        if opcode == 0x9:
            _send_frame(wfile, data, opcode=0xA)
            continue
        if opcode == 0xA:
            continue
        message += data
        if fin:
            return message


def _pairs(raw_query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(raw_query, keep_blank_values=True)
