"""Hostile provider calls: where a template or a misbehaving provider tries to send the token
elsewhere, reach a private address, or hold a run with a slow or huge answer. Every case runs
against the provider stand-in (tests/standins/git_provider) and a recorder standing for the
attacker's server on another origin. Each failed on the code before the one provider client
(the actions did not exist, or the summary's client read a dripping or endless answer whole)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from blocks.webhooks import GitProviderToken
from envforge.errors import (
    ProviderCommentError,
    ProviderUnreachableError,
    RetriesExhaustedError,
)
from envforge.summary.comments import PullRequestRef
from tests.integration.providers.test_azure_and_webhook import (
    AZURE_REPO,
    Provider,
    _fails,
    azure,
    github,
)
from tests.integration.providers.test_publishers import TOKEN, _template
from tests.standins.git_provider import FakeProviderServer

__all__ = ["azure", "github"]


class Recorder(ThreadingHTTPServer):
    """The attacker's server: records every request (with its headers) and answers 200."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                recorder.seen.append((self.command, self.path, dict(self.headers.items())))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        super().__init__(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def evil() -> Iterator[Recorder]:
    with Recorder() as recorder:
        yield recorder


def _redirect(location: str, status: int = 307) -> Any:
    """A provider answering its create calls (POST .../hooks, ...) with a redirect."""
    def trap(handler: BaseHTTPRequestHandler, method: str, path: str) -> bool:
        if method != "POST" or "/elsewhere" in path:
            return False
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True
    return trap


# --- a template naming another host ----------------------------------------------------------

def test_a_repo_url_naming_another_host_gets_no_token(
        tmp_path: Path, azure: Provider, github: Provider, evil: Recorder) -> None:
    host = evil.url.split("://", 1)[1]
    publish = _template(tmp_path / "a", f"""\
        - id: publish
          action: publish:azure
          input: {{repoUrl: '{host}?organization=acme&owner=x&project=Shop Team&repo=web'}}
        """)
    hook = _template(tmp_path / "b", f"""\
        - id: hook
          action: github:webhook
          input: {{repoUrl: '{host}?owner=acme&repo=shop',
                  webhookUrl: 'https://ci.example.com/h'}}
        """)
    for directory, provider in ((publish, azure), (hook, github)):
        error = _fails(directory, provider)
        assert "is not the configured" in str(error)
        assert provider.stand_in.calls == []
    assert evil.seen == []


def test_a_webhook_url_is_data_for_github_never_a_destination(
        tmp_path: Path, github: Provider, evil: Recorder) -> None:
    github.stand_in.make_repo("acme", "shop")
    with_user = _template(tmp_path / "a", """\
        - id: hook
          action: github:webhook
          input: {repoUrl: 'github.com?owner=acme&repo=shop',
                  webhookUrl: 'https://ci:pw@ci.example.com/h'}
        """)
    assert "user name" in str(_fails(with_user, github))
    assert github.stand_in.calls == []  # refused before any request
    to_evil = _template(tmp_path / "b", f"""\
        - id: hook
          action: github:webhook
          input: {{repoUrl: 'github.com?owner=acme&repo=shop', webhookUrl: '{evil.url}/x'}}
        """)
    assert "reachable over the public Internet" in str(_fails(to_evil, github))
    [(_, _, body)] = [c for c in github.stand_in.calls if c[0] == "POST"]
    assert TOKEN not in json.dumps(body)
    assert evil.seen == []


# --- a provider redirecting -----------------------------------------------------------------

def test_a_redirect_to_another_origin_is_refused_and_the_token_stays(
        tmp_path: Path, github: Provider, evil: Recorder) -> None:
    github.stand_in.make_repo("acme", "shop")
    github.stand_in.trap = _redirect(f"{evil.url}/collect")
    directory = _template(tmp_path, """\
        - id: hook
          action: github:webhook
          input: {repoUrl: 'github.com?owner=acme&repo=shop',
                  webhookUrl: 'https://ci.example.com/h', webhookSecret: 'hook-secret'}
        """)
    error = _fails(directory, github)
    assert "is not allowed" in str(error)
    assert evil.seen == []  # neither the token nor the hook's secret went there


def test_a_same_origin_redirect_goes_without_the_credential(tmp_path: Path,
                                                            github: Provider) -> None:
    github.stand_in.make_repo("acme", "shop")
    github.stand_in.trap = _redirect(github.stand_in.base + "/github/elsewhere")
    directory = _template(tmp_path, """\
        - id: hook
          action: github:webhook
          input: {repoUrl: 'github.com?owner=acme&repo=shop',
                  webhookUrl: 'https://ci.example.com/h'}
        """)
    assert "401" in str(_fails(directory, github))  # the redirected request had no token
    first, redirected = github.stand_in.headers
    assert first["Authorization"] == f"Bearer {TOKEN}"
    assert "Authorization" not in redirected
    assert github.stand_in.calls[1][1] == "/github/elsewhere"


def test_a_redirect_to_a_private_address_is_refused(tmp_path: Path, github: Provider) -> None:
    github.stand_in.make_repo("acme", "shop")
    github.stand_in.trap = _redirect("http://169.254.169.254/latest/meta-data/")
    directory = _template(tmp_path, """\
        - id: hook
          action: github:webhook
          input: {repoUrl: 'github.com?owner=acme&repo=shop',
                  webhookUrl: 'https://ci.example.com/h'}
        """)
    assert "169.254.169.254" in str(_fails(directory, github))
    assert len(github.stand_in.calls) == 1


def test_a_clone_url_on_a_private_address_is_never_pushed_to(tmp_path: Path,
                                                             azure: Provider) -> None:
    created: dict[str, Any] = {}

    def metadata_remote(handler: BaseHTTPRequestHandler, method: str, path: str) -> bool:
        if method != "POST":
            return False
        answer = azure.stand_in.azure.handle(method, path, {"name": "web"})
        assert answer is not None
        created.update(answer[1])
        body = json.dumps({**answer[1], "remoteUrl": "http://acme@169.254.169.254/acme/x/_git/web"
                           }).encode()
        handler.send_response(201)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True

    azure.stand_in.trap = metadata_remote
    directory = _template(tmp_path, f"""\
        - id: publish
          action: publish:azure
          input: {{repoUrl: '{AZURE_REPO}'}}
        """)
    error = _fails(directory, azure)
    assert "outside the configured Git base" in str(error)
    assert azure.git.seen_urls == []  # git never ran against anything
    assert created["id"] not in azure.stand_in.azure.repositories  # and it was deleted


# --- slow and huge answers -------------------------------------------------------------------

@pytest.fixture
def status_provider() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(TOKEN) as fake:
        yield fake


def _commenter_block(provider: FakeProviderServer, timeout: float) -> GitProviderToken:
    return GitProviderToken(provider="github", token=SecretStr(TOKEN), api_url=provider.url,
                            timeout_seconds=timeout)


def test_a_dripping_provider_answer_hits_the_time_budget(
        status_provider: FakeProviderServer) -> None:
    def drip(handler: BaseHTTPRequestHandler, method: str, path: str) -> bool:
        if method != "GET":
            return False
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "16")
        handler.end_headers()
        for byte in b"[             ]\n":  # one byte every 0.4 s: never a 2 s silence
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.4)
        return True

    status_provider.trap = drip
    started = time.monotonic()
    with _commenter_block(status_provider, 2).get_client() as commenter, \
            pytest.raises(ProviderCommentError) as caught:
        commenter.upsert_summary(PullRequestRef("github", "acme/shop", 5), "pr-5", "hi")
    assert time.monotonic() - started < 5
    assert "2 s budget" in str(caught.value) and TOKEN not in str(caught.value)
    assert [r.method for r in status_provider.state.requests] == ["GET"]  # nothing posted


def test_a_huge_provider_answer_hits_the_byte_budget(
        status_provider: FakeProviderServer) -> None:
    comment = json.dumps({"id": 1, "body": "x" * 1000}).encode()
    count = 12 * 1024  # about 12 MB of comments, more than the 10 MiB an API answer may use

    def endless(handler: BaseHTTPRequestHandler, method: str, path: str) -> bool:
        if method != "GET":
            return False
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()  # no length: read until the budget says stop
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.wfile.write(b"[" + b",".join([comment] * count) + b"]")
        handler.close_connection = True
        return True

    status_provider.trap = endless
    with _commenter_block(status_provider, 20).get_client() as commenter, \
            pytest.raises(ProviderCommentError) as caught:
        commenter.upsert_summary(PullRequestRef("github", "acme/shop", 5), "pr-5", "hi")
    assert "byte budget" in str(caught.value)
    assert [r.method for r in status_provider.state.requests] == ["GET"]


def test_an_announced_huge_answer_is_refused_before_reading(
        tmp_path: Path, github: Provider) -> None:
    github.stand_in.make_repo("acme", "shop")

    def announced(handler: BaseHTTPRequestHandler, method: str, path: str) -> bool:
        handler.send_response(201)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(50 * 1024 * 1024))
        handler.end_headers()
        handler.wfile.write(b'{"id": 1')
        handler.close_connection = True
        return True

    github.stand_in.trap = announced
    directory = _template(tmp_path, """\
        - id: hook
          action: github:webhook
          input: {repoUrl: 'github.com?owner=acme&repo=shop',
                  webhookUrl: 'https://ci.example.com/h'}
        """)
    assert "bytes announced" in str(_fails(directory, github))


def test_a_busy_provider_is_retried_at_the_client_with_its_retry_after(tmp_path: Path, github: Provider) -> None:
    """A provider that keeps answering 503 with Retry-After: retried at the client (three
    attempts, the asked wait), then one permanent error whose cause says how long to wait."""
    github.stand_in.make_repo("acme", "shop")
    answered: list[float] = []

    def busy(handler: BaseHTTPRequestHandler, method: str, path: str) -> bool:
        answered.append(time.monotonic())
        body = b'{"message": "Service Unavailable"}'
        handler.send_response(503)
        handler.send_header("Retry-After", "1")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True

    github.stand_in.trap = busy
    directory = _template(tmp_path, """\
        - id: publish
          action: publish:github
          input: {repoUrl: 'github.com?owner=acme&repo=new'}
        """)
    error = _fails(directory, github)
    assert "503" in str(error) and "3 attempt(s)" in str(error)
    assert len(answered) == 3 and answered[2] - answered[0] >= 1.9  # waited 1 s twice
    exhausted = error.__cause__  # permanent: Prefect's task retries do not multiply it
    assert isinstance(exhausted, RetriesExhaustedError)
    cause = exhausted.__cause__
    assert isinstance(cause, ProviderUnreachableError) and cause.retry_after == 1.0
