"""The one provider client's error mapping and retry layer (envforge.capabilities.providers),
against httpx.MockTransport: what is temporary, how long it waits, what is never re-sent."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

import httpx
import pytest

from envforge.capabilities import EgressPolicy, ProviderEndpoint
from envforge.capabilities.egress import Answer, parse_url
from envforge.capabilities.providers import ProviderClient, is_temporary, retry_delay
from envforge.errors import (
    ActionError,
    ProviderUnreachableError,
    RetriesExhaustedError,
    TemporaryError,
)

TOKEN = "ghp_providerClientToken42"


def _client(handler: Callable[[httpx.Request], httpx.Response], provider: str = "github",
            slept: list[float] | None = None) -> tuple[ProviderClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    endpoint = ProviderEndpoint.configure(provider, api_url="https://api.test", token=TOKEN)
    policy = EgressPolicy((), resolver=lambda host, port: ["140.82.112.6"],
                          transport=httpx.MockTransport(record))
    waits = slept if slept is not None else []
    return ProviderClient(endpoint, policy, what="step 'x'", sleep=waits.append), seen


def _answer(status: int, headers: dict[str, str]) -> Answer:
    return Answer(status, b"", parse_url("https://api.test/x"), headers)


def test_retry_delay_reads_seconds_dates_and_rate_limit_resets() -> None:
    now = 1_800_000_000.0
    assert retry_delay(_answer(429, {"Retry-After": "7"}), now) == 7.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_delay(_answer(503, {"retry-after": date}), now) == pytest.approx(30, abs=1)
    reset = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(now) + 60)}
    assert retry_delay(_answer(403, reset), now) == 60.0
    assert retry_delay(_answer(503, {}), now) is None
    assert is_temporary(_answer(403, reset)) and not is_temporary(_answer(403, {}))
    assert not is_temporary(_answer(501, {})) and is_temporary(_answer(502, {}))


def test_a_busy_get_is_retried_with_the_asked_wait_then_carries_it() -> None:
    slept: list[float] = []
    client, seen = _client(lambda r: httpx.Response(503, headers={"Retry-After": "2"}),
                           slept=slept)
    with pytest.raises(RetriesExhaustedError) as caught:
        client.call("GET", "/repos/a/b")
    assert len(seen) == 3 and slept == [2.0, 2.0]
    # retried here, then permanent (no other layer retries it); the cause carries the wait
    assert not isinstance(caught.value, TemporaryError)
    cause = caught.value.__cause__
    assert isinstance(cause, ProviderUnreachableError) and cause.retry_after == 2.0
    assert "503" in str(caught.value) and "3 attempt(s)" in str(caught.value)


def test_a_rate_limit_then_success_returns_the_answer() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "1"}),
                    httpx.Response(201, json={"id": 9})])
    slept: list[float] = []
    client, seen = _client(lambda r: next(answers), slept=slept)
    assert client.call("POST", "/repos/a/b/hooks", json={}) == {"id": 9}
    assert len(seen) == 2 and slept == [1.0]  # a 429 says "not processed": a POST may retry


def test_a_post_answered_5xx_is_never_sent_again() -> None:
    client, seen = _client(lambda r: httpx.Response(502))
    with pytest.raises(ActionError, match="may have been processed"):
        client.call("POST", "/user/repos", json={"name": "x"})
    assert len(seen) == 1


def test_a_connection_that_never_opened_is_retried_even_for_a_post() -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(201, json={"id": 1})

    slept: list[float] = []
    client, _ = _client(flaky, slept=slept)
    assert client.call("POST", "/user/repos", json={}) == {"id": 1}
    [wait] = slept  # a jittered back-off when the provider named no wait
    assert 0 < wait <= 1.0


def test_a_connection_reset_is_temporary_never_permanent() -> None:
    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset by peer", request=request)

    client, seen = _client(reset)
    with pytest.raises(RetriesExhaustedError) as caught:
        client.call("GET", "/repos/a/b")
    assert len(seen) == 3 and isinstance(caught.value.__cause__, ProviderUnreachableError)
    client, seen = _client(reset)
    with pytest.raises(ActionError, match="may have been processed"):
        client.call("POST", "/repos/a/b/pulls", json={})
    assert len(seen) == 1


def test_a_long_retry_after_is_handed_up_at_once() -> None:
    slept: list[float] = []
    client, seen = _client(lambda r: httpx.Response(429, headers={"Retry-After": "3600"}),
                           slept=slept)
    with pytest.raises(RetriesExhaustedError) as caught:
        client.call("GET", "/user")
    cause = caught.value.__cause__
    assert len(seen) == 1 and slept == []
    assert isinstance(cause, ProviderUnreachableError) and cause.retry_after == 3600.0


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
def test_a_refusal_is_permanent_names_the_call_and_hides_the_token(status: int) -> None:
    client, seen = _client(lambda r: httpx.Response(
        status, json={"message": f"no {TOKEN}", "errors": [{"message": "why"}]}))
    with pytest.raises(ActionError) as caught:
        client.call("GET", "/repos/a/b")
    assert len(seen) == 1 and not isinstance(caught.value, TemporaryError)
    message = str(caught.value)
    assert f"answered {status} to GET /repos/a/b" in message and "why" in message
    assert TOKEN not in message


def test_a_sign_in_page_is_a_refusal_not_data() -> None:
    client, _ = _client(lambda r: httpx.Response(203, text="<html>Sign In</html>"), "azure")
    with pytest.raises(ActionError, match="not JSON"):
        client.call("GET", "/acme/p/_apis/git/repositories")


def test_each_provider_authenticates_its_way_on_its_api_origin_only() -> None:
    for provider, header, value in (
            ("github", "authorization", f"Bearer {TOKEN}"),
            ("gitlab", "private-token", TOKEN),
            ("azure", "authorization", "Basic OmdocF9wcm92aWRlckNsaWVudFRva2VuNDI=")):
        client, seen = _client(lambda r: httpx.Response(200, json={}), provider)
        client.call("GET", "/x")
        assert seen[0].headers[header] == value
    client, seen = _client(lambda r: httpx.Response(200, json={}), "azure")
    client.call("GET", "/x")
    assert seen[0].headers["x-tfs-fedauthredirect"] == "Suppress"


def test_the_clone_url_check_drops_the_user_name_and_refuses_other_origins() -> None:
    endpoint = ProviderEndpoint.configure("azure", token=TOKEN)
    client = ProviderClient(endpoint, EgressPolicy(()))
    assert client.check_clone_url("https://acme@dev.azure.com/acme/p/_git/r") == \
        "https://dev.azure.com/acme/p/_git/r"
    for bad in ("https://acme@evil.example/acme/p/_git/r", "http://169.254.169.254/x",
                "not a url"):
        with pytest.raises(ActionError, match="outside the configured Git base"):
            client.check_clone_url(bad)


def test_no_real_sleep_in_these_tests() -> None:
    started = time.monotonic()
    client, _ = _client(lambda r: httpx.Response(503, headers={"Retry-After": "5"}))
    with pytest.raises(RetriesExhaustedError):
        client.call("GET", "/x")
    assert time.monotonic() - started < 2
