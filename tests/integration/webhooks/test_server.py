"""Real HTTP to the webhook server; real flow runs on the session's Prefect server."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import httpx
import pytest

from envforge.webhooks.server import WebhookServer
from tests.integration.webhooks.conftest import GITHUB_SECRET, GITLAB_TOKEN, StubDeployments
from tests.unit.webhooks.payloads import (
    github_pull_request,
    gitlab_delivery,
    gitlab_merge_request,
    signed_github,
)

pytestmark = pytest.mark.prefect


def _post(server: WebhookServer, provider: str, body: bytes,
          headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/webhooks/{provider}", content=body, headers=headers,
                      timeout=30)


def _runs(stubs: StubDeployments) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return list(client.read_flow_runs(deployment_filter=DeploymentFilter(
            id=DeploymentFilterId(any_=[stubs.create_id, stubs.destroy_id]))))


def _run(flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(flow_run_id))


def test_healthz(webhook_server: WebhookServer) -> None:
    response = httpx.get(f"{webhook_server.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "providers": ["github", "gitlab"]}


def test_unsigned_and_wrongly_signed_get_401_and_start_nothing(
        webhook_server: WebhookServer, stub_deployments: StubDeployments) -> None:
    before = len(_runs(stub_deployments))
    body, headers = signed_github(github_pull_request("opened", number=301), GITHUB_SECRET)
    unsigned = {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}
    _, wrong = signed_github(github_pull_request("opened", number=301), "guessed-secret")
    gl_body, gl_wrong = gitlab_delivery(gitlab_merge_request("open", iid=301), "guessed")
    responses = [_post(webhook_server, "github", body, unsigned),
                 _post(webhook_server, "github", body, wrong),
                 _post(webhook_server, "gitlab", gl_body, gl_wrong)]
    assert [r.status_code for r in responses] == [401, 401, 401]
    assert all(GITHUB_SECRET not in r.text and GITLAB_TOKEN not in r.text for r in responses)
    assert len(_runs(stub_deployments)) == before


def test_opened_creates_a_run_with_the_flow_parameters_and_a_redelivery_does_not(
        webhook_server: WebhookServer, stub_deployments: StubDeployments) -> None:
    sha = "1a" * 20
    body, headers = signed_github(
        github_pull_request("opened", number=302, sha=sha, repository="acme/web"), GITHUB_SECRET)
    first = _post(webhook_server, "github", body, headers)
    assert first.status_code == 202, first.text
    started = first.json()
    assert started["status"] == "started" and started["environment"] == "pr-302"
    run = _run(started["flowRunId"])
    assert run.deployment_id == stub_deployments.create_id
    assert run.parameters == {
        "name": "pr-302", "template": "node-service", "parameters": {},
        "environment_type": "preview", "ttl": "2d",
        "source": {"repository": "https://github.com/acme/web.git", "branch": "feature/x",
                   "pullRequest": 302, "commit": sha}}
    assert run.idempotency_key == f"github:acme/web:302:{sha}:opened"
    assert run.state.is_scheduled()

    again = _post(webhook_server, "github", body, headers)  # GitHub's "Redeliver"
    assert again.status_code == 202 and again.json()["flowRunId"] == started["flowRunId"]
    keyed = [r for r in _runs(stub_deployments) if r.idempotency_key == run.idempotency_key]
    assert len(keyed) == 1


def test_synchronize_then_closed(webhook_server: WebhookServer,
                                 stub_deployments: StubDeployments) -> None:
    ids = []
    for action, sha in (("opened", "2b" * 20), ("synchronize", "3c" * 20)):
        body, headers = signed_github(github_pull_request(action, number=303, sha=sha),
                                      GITHUB_SECRET)
        response = _post(webhook_server, "github", body, headers)
        assert response.status_code == 202
        ids.append(response.json()["flowRunId"])
    assert ids[0] != ids[1]
    update = _run(ids[1])
    assert update.deployment_id == stub_deployments.create_id
    assert update.parameters["source"]["commit"] == "3c" * 20
    assert update.parameters["template"] == "python-service"  # the mapping's default

    body, headers = signed_github(github_pull_request(
        "closed", number=303, sha="3c" * 20, merged=True, closed_at="2026-11-24T03:00:00Z"),
        GITHUB_SECRET)
    response = _post(webhook_server, "github", body, headers)
    assert response.status_code == 202 and response.json()["operation"] == "destroy"
    destroy = _run(response.json()["flowRunId"])
    assert destroy.deployment_id == stub_deployments.destroy_id
    assert destroy.parameters == {"name": "pr-303"}


def test_gitlab_open_and_merge(webhook_server: WebhookServer,
                               stub_deployments: StubDeployments) -> None:
    body, headers = gitlab_delivery(gitlab_merge_request("open", iid=304), GITLAB_TOKEN)
    opened = _post(webhook_server, "gitlab", body, headers)
    assert opened.status_code == 202
    run = _run(opened.json()["flowRunId"])
    assert run.parameters["name"] == "pr-304"
    assert run.parameters["source"]["repository"] == "https://gitlab.example/group/sub/web.git"
    body, headers = gitlab_delivery(gitlab_merge_request("merge", iid=304), GITLAB_TOKEN)
    merged = _post(webhook_server, "gitlab", body, headers)
    assert _run(merged.json()["flowRunId"]).deployment_id == stub_deployments.destroy_id


def test_ignored_oversized_and_malformed(webhook_server: WebhookServer,
                                         stub_deployments: StubDeployments) -> None:
    before = len(_runs(stub_deployments))
    body, headers = signed_github(github_pull_request("labeled", number=305), GITHUB_SECRET)
    ignored = _post(webhook_server, "github", body, headers)
    assert ignored.status_code == 202 and ignored.json()["status"] == "ignored"

    big = json.dumps({"pad": "x" * 70_000}).encode()
    _, headers = signed_github({}, GITHUB_SECRET)
    assert _post(webhook_server, "github", big, headers).status_code == 413

    payload = github_pull_request("opened", number=305)
    del payload["repository"]
    body, headers = signed_github(payload, GITHUB_SECRET)
    bad = _post(webhook_server, "github", body, headers)
    assert bad.status_code == 400 and "repository.full_name" in bad.json()["error"]

    assert httpx.post(f"{webhook_server.url}/elsewhere", content=b"{}").status_code == 404
    assert len(_runs(stub_deployments)) == before


def test_missing_deployment_is_a_clear_500(webhook_server: WebhookServer) -> None:
    webhook_server.app.dispatcher.create_deployment = "create-environment/not-registered"
    body, headers = signed_github(github_pull_request("opened", number=306), GITHUB_SECRET)
    response = _post(webhook_server, "github", body, headers)
    assert response.status_code == 500
    assert "'create-environment/not-registered' not found" in response.json()["error"]


def test_stub_schema_refuses_a_parameter_the_flow_does_not_take(
        stub_deployments: StubDeployments) -> None:
    """Proves the stub deployments check parameter names, so the tests above mean something."""
    from envforge.errors import DispatchError
    from envforge.webhooks.dispatch import DeploymentRequest, Dispatcher
    from envforge.webhooks.mapping import TemplateMapping

    request = DeploymentRequest(stub_deployments.create, {"name": "pr-1", "templat": "x"},
                                "test:misspelt", "misspelt")
    with pytest.raises(DispatchError, match="refused a run"):
        Dispatcher(TemplateMapping()).start(request)
