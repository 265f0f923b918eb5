"""Fuzzing the webhook parser: any signed body, however odd, is answered 202 or 400 (never an
exception, never a 500), and nothing outside the checked ranges reaches the dispatcher.

Bounded: a fixed number of examples and no per-example deadline; about 10 s on one core.
A crash hypothesis finds is kept below as an explicit @example (a regression test)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from envforge.core.names import is_dns_label
from envforge.webhooks.dispatch import Dispatcher
from envforge.webhooks.events import MAX_PR_NUMBER
from envforge.webhooks.mapping import TemplateMapping
from envforge.webhooks.server import WebhookApp, WebhookCredentials
from envforge.webhooks.verify import github_signature
from tests.unit.webhooks.payloads import github_pull_request

pytestmark = pytest.mark.fuzz
SECRET = "fuzz-secret"
FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=30)

started: list[dict[str, Any]] = []


def _run(name: str, **kwargs: Any) -> Any:
    started.append(kwargs)
    return SimpleNamespace(id="run-1", name=kwargs["flow_run_name"])


APP = WebhookApp(WebhookCredentials(SecretStr(SECRET)),
                 Dispatcher(TemplateMapping.from_data({"default": "t"}), run=_run))


def _deliver(body: bytes) -> int:
    headers = {"X-GitHub-Event": "pull_request",
               "X-Hub-Signature-256": github_signature(body, SECRET)}
    response = APP.handle("github", headers, body)
    assert response.status in (202, 400), (response.status, response.body)
    assert "error" in response.body or response.status == 202
    return response.status


@FUZZ
@given(st.binary(max_size=2000))
@example(b"[" * 5000)
@example(b'{"number": ' + b"9" * 5000 + b"}")
@example(b"\xff")
def test_any_bytes_are_202_or_400(body: bytes) -> None:
    _deliver(body)


@FUZZ
@given(json_values)
def test_any_json_is_202_or_400(value: Any) -> None:
    _deliver(json.dumps(value).encode())


FIELDS = ["action", "number", "pull_request.head.ref", "pull_request.head.sha",
          "repository.full_name", "repository.clone_url", "pull_request"]


@FUZZ
@given(st.sampled_from(FIELDS), json_values | st.integers(min_value=-(10**70),
                                                          max_value=10**70))
@example("number", 10**60)
@example("pull_request.head.ref", "nl1\n")
def test_a_mutated_pull_request_never_starts_a_bad_run(field: str, value: Any) -> None:
    payload = github_pull_request("opened")
    target: Any = payload
    *parents, last = field.split(".")
    for part in parents:
        target = target[part]
    target[last] = value
    started.clear()
    status = _deliver(json.dumps(payload).encode())
    if status == 202 and started:
        parameters = started[0]["parameters"]
        assert is_dns_label(parameters["name"])
        assert 1 <= payload["number"] <= MAX_PR_NUMBER
