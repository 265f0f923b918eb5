"""D6, D7 and the webhook parts of D10-D16: slow, oversized and malformed requests get a
prompt 4xx, never a 500 or a starved signed delivery. Servers listen on 127.0.0.1 only."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from envforge.webhooks.dispatch import Dispatcher
from envforge.webhooks.mapping import TemplateMapping
from envforge.webhooks.server import WebhookApp, WebhookCredentials, WebhookServer
from envforge.webhooks.verify import github_signature
from tests.unit.webhooks.payloads import github_pull_request, signed_github

SECRET = "hostile-secret"


@pytest.fixture
def started() -> list[str]:
    return []


@pytest.fixture
def server(started: list[str]) -> Iterator[WebhookServer]:
    def run(name: str, **kwargs: Any) -> Any:
        started.append(kwargs["flow_run_name"])
        return SimpleNamespace(id="run-1", name=kwargs["flow_run_name"])

    app = WebhookApp(WebhookCredentials(SecretStr(SECRET)),
                     Dispatcher(TemplateMapping.from_data({"default": "t"}), run=run))
    server = WebhookServer(app, "127.0.0.1", 0, header_timeout=2.0, body_timeout=2.0)
    server.start_background()
    yield server
    server.shutdown()
    server.server_close()


def _signed(body: bytes) -> dict[str, str]:
    return {"X-GitHub-Event": "pull_request", "X-Hub-Signature-256":
            github_signature(body, SECRET), "Content-Type": "application/json"}


def test_32_slow_clients_do_not_delay_a_signed_delivery_or_healthz(
        server: WebhookServer, started: list[str]) -> None:
    host, port = server.server_address
    slow = []
    try:
        for _ in range(32):
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(s)
        for s in slow[:16]:  # a byte now and then keeps them "active"
            s.sendall(b"a")
        body, headers = signed_github(github_pull_request("opened"), SECRET)
        began = time.monotonic()
        response = httpx.post(f"{server.url}/webhooks/github", content=body, headers=headers,
                              timeout=5)
        delivery_seconds = time.monotonic() - began
        health = httpx.get(f"{server.url}/healthz", timeout=5)
        assert response.status_code == 202 and len(started) == 1, response.text
        assert health.status_code == 200
        assert delivery_seconds < 1.0, delivery_seconds
        # the slow clients are dropped once the head deadline passes (408 or closed)
        deadline = time.monotonic() + 6
        s = slow[0]
        s.settimeout(max(0.1, deadline - time.monotonic()))
        answer = s.recv(200)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408")
    finally:
        for s in slow:
            s.close()


@pytest.mark.parametrize(("name", "body", "fragment"), [
    ("deep-json", b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    ("deep-object", b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested too deeply"),
    ("5000-digit-number", b'{"action": "opened", "number": ' + b"9" * 5000 + b"}", "refuses"),
    ("not-json", b"{nope", "not JSON"),
    ("not-utf8", b"\xff\xfe", "not JSON"),
])
def test_malformed_bodies_are_400_not_500(server: WebhookServer, name: str, body: bytes,
                                          fragment: str) -> None:
    response = httpx.post(f"{server.url}/webhooks/github", content=body,
                          headers=_signed(body), timeout=5)
    assert response.status_code == 400, (name, response.text)
    assert fragment in response.json()["error"]


@pytest.mark.parametrize(("change", "field"), [
    ({"number": 10**60}, "out of range"),
    ({"number": 0}, "out of range"),
    ({"number": -3}, "out of range"),
    ({"branch": "nl1\n"}, "branch name"),
    ({"branch": "a..b"}, "branch name"),
    ({"branch": "-rf"}, "branch name"),
    ({"repository": "acme/../etc"}, "repository name"),
    ({"repository": "acme/web\n"}, "repository name"),
    ({"repository": "a/b/c"}, "repository name"),
    ({"sha": "HEAD; rm -rf /"}, "commit hash"),
])
def test_invalid_numbers_names_and_branches_start_nothing(
        server: WebhookServer, started: list[str], change: dict[str, Any], field: str) -> None:
    payload = github_pull_request("opened", **{k: v for k, v in change.items()
                                                if k in ("sha", "branch", "repository")})
    if "number" in change:
        payload["number"] = change["number"]
        payload["pull_request"]["number"] = change["number"]
    body, headers = signed_github(payload, SECRET)
    response = httpx.post(f"{server.url}/webhooks/github", content=body, headers=headers,
                          timeout=5)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]
    assert started == []


def test_oversized_headers_are_answered_431(server: WebhookServer) -> None:
    response = httpx.get(f"{server.url}/healthz", headers={"X-Big": "a" * 40_000}, timeout=5)
    assert response.status_code == 431


def test_an_unsigned_delivery_is_401_and_an_unknown_path_404(server: WebhookServer) -> None:
    body = b'{"action": "opened"}'
    assert httpx.post(f"{server.url}/webhooks/github", content=body, timeout=5,
                      headers={"X-GitHub-Event": "pull_request"}).status_code == 401
    assert httpx.get(f"{server.url}/nope", timeout=5).status_code == 404


def test_a_body_that_never_finishes_gets_408(server: WebhookServer) -> None:
    host, port = server.server_address
    with socket.create_connection((host, port), timeout=6) as s:
        s.sendall(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        answer = s.recv(200)
    assert answer.startswith(b"HTTP/1.1 408"), answer
