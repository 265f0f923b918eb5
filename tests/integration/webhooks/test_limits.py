"""Bounded concurrency of the real HTTP server (no Prefect: the dispatcher's run is a stub)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import httpx
from pydantic import SecretStr

from envforge.webhooks.dispatch import Dispatcher
from envforge.webhooks.mapping import TemplateMapping
from envforge.webhooks.server import WebhookApp, WebhookCredentials, WebhookServer
from tests.unit.webhooks.payloads import github_pull_request, signed_github


def test_requests_beyond_the_limit_get_503_and_the_slot_is_given_back() -> None:
    entered, release = threading.Event(), threading.Event()

    def blocking_run(name: str, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(10)
        return SimpleNamespace(id="run-1", name=kwargs["flow_run_name"])

    app = WebhookApp(WebhookCredentials(SecretStr("s")),
                     Dispatcher(TemplateMapping.from_data({"default": "t"}), run=blocking_run))
    server = WebhookServer(app, "127.0.0.1", 0, max_concurrent=1)
    server.start_background()
    body, headers = signed_github(github_pull_request("opened"), "s")
    url = f"{server.url}/webhooks/github"
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(httpx.post, url, content=body, headers=headers, timeout=20)
            assert entered.wait(10)
            busy = httpx.post(url, content=body, headers=headers, timeout=10)
            assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
            release.set()
            assert first.result().status_code == 202
        # the slot is free again once the first connection has closed (bounded wait)
        deadline = time.monotonic() + 5
        status = 0
        while time.monotonic() < deadline:
            status = httpx.get(f"{server.url}/healthz", timeout=5).status_code
            if status == 200:
                break
            time.sleep(0.05)
        assert status == 200
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_a_bug_in_dispatch_is_a_500_and_the_server_keeps_serving() -> None:
    calls = []

    def broken_run(name: str, **kwargs: Any) -> Any:
        calls.append(name)
        return object()  # no .id: StartedRun cannot be built -> AttributeError

    app = WebhookApp(WebhookCredentials(SecretStr("s")),
                     Dispatcher(TemplateMapping.from_data({"default": "t"}), run=broken_run))
    server = WebhookServer(app, "127.0.0.1", 0)
    server.start_background()
    try:
        body, headers = signed_github(github_pull_request("opened"), "s")
        response = httpx.post(f"{server.url}/webhooks/github", content=body, headers=headers,
                              timeout=10)
        assert response.status_code == 500 and "internal error" in response.json()["error"]
        assert calls and httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
