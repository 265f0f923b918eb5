"""Git's network failures are temporary, its refusals permanent: a real git against a closed
port, a server that drops every connection, one that answers 503, and one that answers 401/404.
The publishers retry the temporary ones in the one retry layer and give up in one line."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from envforge.actions.publish_common import provider_git
from envforge.capabilities import EgressPolicy, ProviderEndpoint
from envforge.capabilities.providers import ProviderClient
from envforge.core.git_boundary import is_transient_failure, run_git
from envforge.errors import ActionError, GitError, GitUnreachableError, TemporaryError


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


class _Dropper:
    """Accepts every connection and closes it at once (a reset mid-request)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.accepted = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/acme/shop.git"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.stopping:
                conn.close()
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stopping = True
        with socket.create_connection(self.sock.getsockname(), timeout=5):
            pass  # wakes the accept so the thread ends
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def dropper() -> Iterator[_Dropper]:
    server = _Dropper()
    yield server
    server.close()


def _answering(status: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_closed_port_is_temporary() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/acme/shop.git"
    with pytest.raises(GitUnreachableError) as info:
        run_git(["ls-remote", url], timeout=30)
    assert isinstance(info.value, TemporaryError)
    assert "ls-remote failed" in str(info.value) and "\n" not in str(info.value)


def test_a_dropped_connection_is_temporary(dropper: _Dropper) -> None:
    with pytest.raises(GitUnreachableError):
        run_git(["ls-remote", dropper.url], timeout=30)
    assert dropper.accepted >= 1


@pytest.mark.parametrize("status, temporary", [(503, True), (502, True), (404, False),
                                               (403, False), (401, False)])
def test_http_answers_are_classed_by_status(status: int, temporary: bool) -> None:
    server = _answering(status)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/acme/shop.git"
        with pytest.raises(GitError) as info:
            run_git(["ls-remote", url], timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert isinstance(info.value, TemporaryError) is temporary, str(info.value)


@pytest.mark.parametrize("output, temporary", [
    ("ssh: connect to host git.example port 22: Connection refused\n"
     "fatal: Could not read from remote repository.", True),
    ("ERROR: Repository not found.\nfatal: Could not read from remote repository.", False),
    ("git@github.com: Permission denied (publickey).\n"
     "fatal: Could not read from remote repository.", False),
    ("fatal: Could not read from remote repository.", False),
    ("error: RPC failed; curl 56 Recv failure: Connection reset by peer\n"
     "fatal: early EOF", True),
    ("fatal: Authentication failed for 'https://github.com/acme/shop.git/'", False),
])
def test_what_git_prints_decides(output: str, temporary: bool) -> None:
    assert is_transient_failure(output) is temporary


def test_a_publisher_retries_a_dropped_connection_then_gives_up_in_one_line(
        tmp_path: Path, dropper: _Dropper) -> None:
    endpoint = ProviderEndpoint.configure("github", api_url="http://127.0.0.1:9/api",
                                          git_url=dropper.url.rsplit("/acme", 1)[0],
                                          token="tok-1234")
    waits: list[float] = []
    client = ProviderClient(endpoint, EgressPolicy.deny_all(), "tok-1234", what="step 'p'",
                            sleep=waits.append)
    with pytest.raises(ActionError) as info:
        provider_git(["ls-remote", dropper.url], tmp_path, client)
    client.close()
    message = str(info.value)
    assert "gave up after 3 attempt(s)" in message and "\n" not in message
    assert "tok-1234" not in message
    assert dropper.accepted >= 3 and len(waits) == 2


def test_a_publisher_does_not_retry_a_refusal(tmp_path: Path) -> None:
    server = _answering(404)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        endpoint = ProviderEndpoint.configure("github", api_url=base + "/api", git_url=base,
                                              token="tok-1234")
        waits: list[float] = []
        client = ProviderClient(endpoint, EgressPolicy.deny_all(), "tok-1234",
                                what="step 'p'", sleep=waits.append)
        with pytest.raises(ActionError, match="ls-remote failed"):
            provider_git(["ls-remote", base + "/acme/shop.git"], tmp_path, client)
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    assert waits == []
