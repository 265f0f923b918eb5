"""The curl recipe of docs/webhooks.md, step by step over plain HTTP: any flow can be started
through the Prefect REST API, idempotently."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.webhooks.conftest import STUB_DEPLOYMENT, StubDeployments

pytestmark = pytest.mark.prefect


def test_start_a_deployment_by_name_with_an_idempotency_key(
        stub_deployments: StubDeployments) -> None:
    from prefect.settings import PREFECT_API_URL

    api = str(PREFECT_API_URL.value()).rstrip("/")
    with httpx.Client(base_url=api, timeout=30) as http:
        found = http.get(f"/deployments/name/create-environment/{STUB_DEPLOYMENT}")
        assert found.status_code == 200, found.text
        deployment_id = found.json()["id"]
        assert deployment_id == str(stub_deployments.create_id)
        request = {"parameters": {"name": "dev-api", "template": "python-service"},
                   "idempotency_key": "manual:dev-api:1"}
        first = http.post(f"/deployments/{deployment_id}/create_flow_run", json=request)
        again = http.post(f"/deployments/{deployment_id}/create_flow_run", json=request)
        assert first.status_code == 201, first.text
        assert again.status_code in (200, 201), again.text
        assert first.json()["id"] == again.json()["id"], (first.text, again.text)
        run = http.get(f"/flow_runs/{first.json()['id']}").json()
        assert run["parameters"] == request["parameters"]
        assert run["state"]["type"] == "SCHEDULED", run["state"]

        refused = http.post(f"/deployments/{deployment_id}/create_flow_run",
                            json={"parameters": {"name": "dev-api"}})  # template missing
        assert refused.status_code == 409, refused.text
