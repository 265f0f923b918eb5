"""A local stand-in for the GitHub and GitLab comment APIs: stores comments in memory and
records every request (method, path, headers), on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

GITHUB_THREAD = re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/comments$")
GITHUB_EDIT = re.compile(r"^/repos/([^/]+/[^/]+)/issues/comments/(\d+)$")
GITLAB_THREAD = re.compile(r"^/projects/([^/]+)/merge_requests/(\d+)/notes$")
GITLAB_EDIT = re.compile(r"^/projects/([^/]+)/merge_requests/(\d+)/notes/(\d+)$")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeProviderState:
    token: str
    requests: list[Recorded] = field(default_factory=list)
    # (thread key) -> {comment id: body}
    threads: dict[str, dict[int, str]] = field(default_factory=dict)
    next_id: int = 100
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: FakeProviderServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        path = urlsplit(self.path).path  # raw: %2F stays encoded, as on GitLab
        with state.lock:
            state.requests.append(Recorded(self.command, path, dict(self.headers.items()), body))
        github_ok = self.headers.get("Authorization") == f"Bearer {state.token}"
        gitlab_ok = self.headers.get("PRIVATE-TOKEN") == state.token
        if not (github_ok or gitlab_ok):
            self._reply(401, {"message": "Bad credentials"})
            return
        for pattern in (GITHUB_THREAD, GITLAB_THREAD):
            match = pattern.match(path)
            if match:
                thread = state.threads.setdefault(f"{match[1]}#{match[2]}", {})
                if self.command == "GET":
                    self._reply(200, [{"id": i, "body": b} for i, b in sorted(thread.items())])
                    return
                if self.command == "POST":
                    with state.lock:
                        state.next_id += 1
                        thread[state.next_id] = body["body"]
                    self._reply(201, {"id": state.next_id, "body": body["body"]})
                    return
        for pattern, method in ((GITHUB_EDIT, "PATCH"), (GITLAB_EDIT, "PUT")):
            match = pattern.match(path)
            if match and self.command == method:
                comment_id = int(match.groups()[-1])
                for thread in state.threads.values():
                    if comment_id in thread:
                        thread[comment_id] = body["body"]
                        self._reply(200, {"id": comment_id, "body": body["body"]})
                        return
                self._reply(404, {"message": "Not Found"})
                return
        self._reply(404, {"message": f"no route {self.command} {path}"})

    do_GET = do_POST = do_PATCH = do_PUT = _handle

    def _reply(self, status: int, data: Any) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class FakeProviderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str) -> None:
        self.state = FakeProviderState(token)
        super().__init__(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FakeProviderServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
