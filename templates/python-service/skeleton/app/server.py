"""The HTTP server: `/` greets, `/healthz` answers the Kubernetes probes."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app import DEFAULT_PORT, SERVICE_NAME


class Handler(BaseHTTPRequestHandler):
    """Answers GET requests with small JSON documents."""

    server_version = f"{SERVICE_NAME}/0.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, {"status": "ok"})
        elif path == "/":
            self._send(200, {"service": SERVICE_NAME, "message": f"Hello from {SERVICE_NAME}"})
        else:
            self._send(404, {"error": "not found", "path": path})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        sys.stdout.write(f"{self.address_string()} {format % args}\n")


def make_server(host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to host:port (port 0 picks a free one, for tests)."""
    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    """Serve until SIGTERM/SIGINT; PORT and HOST come from the environment."""
    port = int(os.environ.get("PORT", DEFAULT_PORT))
    host = os.environ.get("HOST", "0.0.0.0")
    server = make_server(host, port)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"{SERVICE_NAME} listening on {host}:{server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()
