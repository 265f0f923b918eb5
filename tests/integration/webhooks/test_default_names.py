"""The server's default deployment names reach the deployments the lead's flows register.

When the session already has the real deployments (registered from prefect.yaml by another
test), the deliveries go to them, which also shows that the webhook's parameters pass the real
flows' enforced schemas; otherwise stub deployments under exactly those names are created.
No worker serves the session's work pools, so the runs only wait; they (and any stubs) are
deleted at the end."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import httpx
import pytest
from pydantic import SecretStr

from envforge.webhooks.dispatch import (
    DEFAULT_CREATE_DEPLOYMENT,
    DEFAULT_DESTROY_DEPLOYMENT,
    Dispatcher,
)
from envforge.webhooks.mapping import TemplateMapping
from envforge.webhooks.server import WebhookApp, WebhookCredentials, WebhookServer
from tests.integration.webhooks.conftest import (
    GITHUB_SECRET,
    create_environment,
    destroy_environment,
    stub_parameter_schema,
)
from tests.unit.webhooks.payloads import github_pull_request, signed_github

pytestmark = pytest.mark.prefect


@pytest.fixture
def default_stubs(prefect_server: None) -> Iterator[dict[str, UUID]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        ids: dict[str, UUID] = {}
        created: list[UUID] = []
        for name, fn in ((DEFAULT_CREATE_DEPLOYMENT, create_environment),
                         (DEFAULT_DESTROY_DEPLOYMENT, destroy_environment)):
            try:
                ids[name] = client.read_deployment_by_name(name).id
                continue
            except ObjectNotFound:
                pass
            flow_name, deployment_name = name.split("/")
            ids[name] = client.create_deployment(
                flow_id=client.create_flow_from_name(flow_name), name=deployment_name,
                entrypoint=f"stub.py:{fn.__name__}",
                parameter_openapi_schema=stub_parameter_schema(fn),
                enforce_parameter_schema=True)
            created.append(ids[name])
        yield ids
        for run in client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=list(ids.values())))):
            client.delete_flow_run(run.id)
        for deployment_id in created:
            client.delete_deployment(deployment_id)


def test_default_names(default_stubs: dict[str, UUID]) -> None:
    from prefect.client.orchestration import get_client

    app = WebhookApp(WebhookCredentials(SecretStr(GITHUB_SECRET)),
                     Dispatcher(TemplateMapping.from_data({"default": "python-service"})))
    server = WebhookServer(app, "127.0.0.1", 0)
    server.start_background()
    try:
        started = []
        for action, closed_at in (("opened", None), ("closed", "2026-11-24T03:00:00Z")):
            body, headers = signed_github(
                github_pull_request(action, number=501, closed_at=closed_at), GITHUB_SECRET)
            response = httpx.post(f"{server.url}/webhooks/github", content=body,
                                  headers=headers, timeout=30)
            assert response.status_code == 202, response.text
            started.append(UUID(response.json()["flowRunId"]))
    finally:
        server.shutdown()
        server.server_close()
    with get_client(sync_client=True) as client:
        create, destroy = (client.read_flow_run(i) for i in started)
    assert create.deployment_id == default_stubs[DEFAULT_CREATE_DEPLOYMENT]
    assert destroy.deployment_id == default_stubs[DEFAULT_DESTROY_DEPLOYMENT]
    assert destroy.parameters == {"name": "pr-501"}
