"""Stub deployments on the session's Prefect server, and the webhook server under test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from pydantic import SecretStr

from envforge.webhooks.dispatch import Dispatcher
from envforge.webhooks.mapping import TemplateMapping
from envforge.webhooks.server import WebhookApp, WebhookCredentials, WebhookServer

GITHUB_SECRET = "integration-gh-secret"
GITLAB_TOKEN = "integration-gl-token"
# Flow names as the lead's flows; a deployment name of our own, so a real
# create-environment/create-environment registered by other tests is never touched.
STUB_DEPLOYMENT = "webhook-stub"


def create_environment(name: str, template: str, parameters: dict[str, Any] = {},  # noqa: B006
                       environment_type: str = "preview", ttl: str | None = None,
                       source: dict[str, Any] | None = None) -> None:
    """Signature of the lead's create flow: the stub deployment's schema comes from it."""


def destroy_environment(name: str) -> None:
    """Signature of the lead's destroy flow."""


@dataclass(frozen=True)
class StubDeployments:
    create: str  # "flow/deployment"
    destroy: str
    create_id: UUID
    destroy_id: UUID


def stub_parameter_schema(fn: Any) -> dict[str, Any]:
    from prefect.utilities.callables import parameter_schema

    schema: dict[str, Any] = parameter_schema(fn).model_dump_for_openapi()
    schema["additionalProperties"] = False  # a misspelt parameter name is refused
    return schema


@pytest.fixture(scope="module")
def stub_deployments(prefect_server: None) -> Iterator[StubDeployments]:
    """Deployments without a work pool: runs are created and stay Scheduled, never executed.
    Removed (runs first) at the end, so nothing is left for a worker of other tests."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        ids = {}
        for flow_name, fn in (("create-environment", create_environment),
                              ("destroy-environment", destroy_environment)):
            flow_id = client.create_flow_from_name(flow_name)
            ids[flow_name] = client.create_deployment(
                flow_id=flow_id, name=STUB_DEPLOYMENT, entrypoint=f"stub.py:{fn.__name__}",
                parameter_openapi_schema=stub_parameter_schema(fn), enforce_parameter_schema=True)
        yield StubDeployments(f"create-environment/{STUB_DEPLOYMENT}",
                              f"destroy-environment/{STUB_DEPLOYMENT}",
                              ids["create-environment"], ids["destroy-environment"])
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
            id=DeploymentFilterId(any_=list(ids.values()))))
        for run in runs:
            client.delete_flow_run(run.id)
        for deployment_id in ids.values():
            client.delete_deployment(deployment_id)


@pytest.fixture
def webhook_server(stub_deployments: StubDeployments) -> Iterator[WebhookServer]:
    """The real HTTP server on a free 127.0.0.1 port, dispatching to the stub deployments."""
    mapping = TemplateMapping.from_data({
        "default": "python-service",
        "repositories": {"acme/web": {"template": "node-service", "ttl": "2d"}},
    })
    dispatcher = Dispatcher(mapping, stub_deployments.create, stub_deployments.destroy)
    credentials = WebhookCredentials(SecretStr(GITHUB_SECRET), SecretStr(GITLAB_TOKEN))
    server = WebhookServer(WebhookApp(credentials, dispatcher), "127.0.0.1", 0,
                           max_body_bytes=64 * 1024)
    server.start_background()
    yield server
    server.shutdown()
    server.server_close()
