"""A Git smart-HTTP server for tests: ``git http-backend`` behind a tiny HTTP server on
127.0.0.1, asking for a token (HTTP Basic) for everything (``protect="all"``, a private
repository) or only to push (``protect="push"``, as a hosted Git service does for a public one).
Used as a context manager; it records the URLs it was asked for."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal


class GitHttpServer:
    def __init__(self, project_root: Path, user: str, token: str,
                 protect: Literal["all", "push"] = "all") -> None:
        expected = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
        self.project_root = project_root
        self.seen_urls: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet
                server.seen_urls.append(self.path)

            def _serve(self) -> None:
                pushing = "git-receive-pack" in self.path
                needs_token = protect == "all" or pushing
                if needs_token and self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                env = {**os.environ, "GIT_PROJECT_ROOT": str(project_root),
                       "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": self.command,
                       "PATH_INFO": path, "QUERY_STRING": query, "REMOTE_ADDR": "127.0.0.1",
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                       "CONTENT_LENGTH": str(len(body))}
                if needs_token:
                    env["REMOTE_USER"] = user
                for header, variable in (("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                                         ("Git-Protocol", "GIT_PROTOCOL")):
                    if self.headers.get(header):
                        env[variable] = self.headers[header]
                out = subprocess.run(["git", "http-backend"], input=body, env=env,
                                     capture_output=True, timeout=60, check=False).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status, headers = 200, []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _serve
            do_POST = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, repo: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{repo}"

    def __enter__(self) -> GitHttpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
