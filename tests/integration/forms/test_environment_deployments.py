"""`create-environment/<template>` deployments on a real Prefect server: the form the UI shows
is the environment's fields then the template's, and the server enforces it."""

from __future__ import annotations

import pytest

from envforge.core.config import PROJECT_ROOT
from envforge.environments.deployments import register_template_deployments
from envforge.environments.forms import environment_form_schema
from envforge.templating.loader import TemplateCatalog

pytestmark = pytest.mark.prefect


def test_environment_deployment_form_and_enforcement(prefect_server: None) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    template = TemplateCatalog([PROJECT_ROOT / "templates"]).load("preview-app")
    register_template_deployments([(template, str(template.directory))], work_pool="test-pool")
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("create-environment/preview-app")
        assert deployment.parameter_openapi_schema == environment_form_schema(template)
        assert deployment.enforce_parameter_schema is True
        assert deployment.entrypoint == "flows/environments.py:create_environment_from_form"
        for wrong in ({"name": "pr-1"},  # repoUrl is required
                      {"name": "pr-1", "repoUrl": "r", "environment_type": "production"},
                      {"name": "pr-1", "repoUrl": "r", "stack": "cobol"},
                      {"name": "Not A Label", "repoUrl": "r"}):
            with pytest.raises(PrefectHTTPStatusError) as info:
                client.create_flow_run_from_deployment(deployment.id, parameters=wrong)
            assert info.value.response.status_code in (409, 422), wrong
        accepted = client.create_flow_run_from_deployment(
            deployment.id, parameters={"name": "pr-1", "repoUrl": "https://git.example/a.git",
                                       "source": {"pullRequest": 1}})
        assert accepted.parameters["source"] == {"pullRequest": 1}
        client.delete_flow_run(accepted.id)
        # the generic entry point stays for API callers
        generic = client.read_flow_by_name("create-environment")
        assert generic.name == "create-environment"
