"""WebhookApp without HTTP: verification happens before parsing, status codes, no start on
a refused request."""

from __future__ import annotations

from pydantic import SecretStr

from envforge.webhooks.dispatch import Dispatcher
from envforge.webhooks.mapping import TemplateMapping
from envforge.webhooks.server import WebhookApp, WebhookCredentials
from tests.unit.webhooks.payloads import (
    github_pull_request,
    gitlab_delivery,
    gitlab_merge_request,
    signed_github,
)
from tests.unit.webhooks.test_dispatch import RecordingRun

SECRET, TOKEN = "gh-secret-value", "gl-token-value"


def _app(run: RecordingRun, gitlab: bool = True) -> WebhookApp:
    credentials = WebhookCredentials(SecretStr(SECRET), SecretStr(TOKEN) if gitlab else None)
    mapping = TemplateMapping.from_data({"default": "python-service"})
    return WebhookApp(credentials, Dispatcher(mapping, run=run))


def test_signed_github_delivery_starts_a_run() -> None:
    run = RecordingRun()
    body, headers = signed_github(github_pull_request("opened"), SECRET)
    response = _app(run).handle("github", headers, body)
    assert response.status == 202
    assert response.body["status"] == "started" and response.body["environment"] == "pr-42"
    assert len(run.calls) == 1


def test_header_names_are_matched_case_blind() -> None:
    run = RecordingRun()
    body, headers = signed_github(github_pull_request("opened"), SECRET)
    response = _app(run).handle("github", {k.lower(): v for k, v in headers.items()}, body)
    assert response.status == 202 and len(run.calls) == 1


def test_unsigned_wrongly_signed_and_tampered_get_401_and_start_nothing() -> None:
    run = RecordingRun()
    app = _app(run)
    body, headers = signed_github(github_pull_request("opened"), SECRET)
    unsigned = {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}
    assert app.handle("github", unsigned, body).status == 401
    _, wrong = signed_github(github_pull_request("opened"), "not-the-secret")
    assert app.handle("github", wrong, body).status == 401
    assert app.handle("github", headers, body.replace(b"42", b"43")).status == 401
    response = app.handle("github", headers, b"not json at all")
    assert response.status == 401  # the signature is checked before the body is parsed
    assert SECRET not in str(response.body)
    assert run.calls == []


def test_signed_but_not_json_is_400() -> None:
    body = b"payload=%7B%7D"
    _, headers = signed_github({}, SECRET)
    from envforge.webhooks.verify import github_signature

    headers["X-Hub-Signature-256"] = github_signature(body, SECRET)
    response = _app(RecordingRun()).handle("github", headers, body)
    assert response.status == 400 and "application/json" in response.body["error"]


def test_ignored_events_answer_202_with_reason() -> None:
    run = RecordingRun()
    body, headers = signed_github(github_pull_request("labeled"), SECRET)
    response = _app(run).handle("github", headers, body)
    assert response.status == 202 and response.body["status"] == "ignored"
    assert "labeled" in response.body["reason"] and run.calls == []


def test_gitlab_token_checked() -> None:
    run = RecordingRun()
    app = _app(run)
    body, headers = gitlab_delivery(gitlab_merge_request("merge"), TOKEN)
    response = app.handle("gitlab", headers, body)
    assert response.status == 202 and response.body["operation"] == "destroy"
    for token in (None, "wrong"):
        body, headers = gitlab_delivery(gitlab_merge_request("merge"), token)
        assert app.handle("gitlab", headers, body).status == 401
    assert len(run.calls) == 1


def test_provider_without_secret_is_disabled_and_unknown_provider_404() -> None:
    run = RecordingRun()
    body, headers = gitlab_delivery(gitlab_merge_request(), TOKEN)
    assert _app(run, gitlab=False).handle("gitlab", headers, body).status == 404
    assert _app(run).handle("bitbucket", headers, body).status == 404
    assert run.calls == []


def test_credentials_from_environment() -> None:
    creds = WebhookCredentials.from_environment({"ENVFORGE_GITHUB_WEBHOOK_SECRET": "x"})
    assert creds.enabled == ["github"]
    assert "x" not in repr(creds)
