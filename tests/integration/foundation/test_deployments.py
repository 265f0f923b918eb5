"""`envforge deploy`: the Prefect run form of each template is the template's own schema."""

from pathlib import Path

import pytest

from envforge.core.config import PROJECT_ROOT
from envforge.environments.deployments import flow_run_command, register_template_deployments
from envforge.templating.loader import TemplateCatalog
from envforge.templating.parameters import form_schema

pytestmark = pytest.mark.prefect


def test_deployment_form_schema_matches_each_template(prefect_server: None) -> None:
    from prefect.client.orchestration import get_client

    catalog = TemplateCatalog([PROJECT_ROOT / "templates"])
    templates = [(t, str(t.directory)) for t in catalog.list()]
    assert {t.name for t, _ in templates} >= {"python-service", "node-service", "java-service"}
    registered = register_template_deployments(templates, work_pool="test-pool")
    assert [d.name for d in registered] == [
        name for t, _ in templates
        for name in (f"scaffold/{t.name}", f"create-environment/{t.name}")]

    with get_client(sync_client=True) as client:
        for template, ref in templates:
            deployment = client.read_deployment_by_name(f"scaffold/{template.name}")
            schema = deployment.parameter_openapi_schema
            assert schema == form_schema(template)
            # what a person sees in the form, property by property
            for page in template.spec.parameters:
                for name, prop in page["properties"].items():
                    shown = schema["properties"][name]
                    for key in ("title", "description", "enum", "default", "type"):
                        assert shown.get(key) == prop.get(key), (template.name, name, key)
                for name in page.get("required", []):
                    assert name in schema["required"]
            assert deployment.enforce_parameter_schema is True
            assert deployment.job_variables == {"env": {"ENVFORGE_TEMPLATE": ref},
                                               "command": flow_run_command()}
            assert deployment.work_pool_name == "test-pool"
            assert f"template:{template.name}" in deployment.tags


def test_the_server_refuses_runs_that_break_the_form(prefect_server: None, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    catalog = TemplateCatalog([PROJECT_ROOT / "templates"])
    template = catalog.load("python-service")
    register_template_deployments([(template, str(template.directory))], work_pool="test-pool")
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("scaffold/python-service")
        with pytest.raises(PrefectHTTPStatusError) as info:
            client.create_flow_run_from_deployment(deployment.id, parameters={"port": "eighty"})
        assert info.value.response.status_code in (409, 422)
        accepted = client.create_flow_run_from_deployment(
            deployment.id, parameters={"name": "shop"})
        assert accepted.parameters == {"name": "shop"}
        client.delete_flow_run(accepted.id)


@pytest.mark.slow  # 10 s of prefect deploy on a loaded machine: make test-fast skips it
def test_prefect_yaml_deploys_with_prefects_own_cli(prefect_server: None) -> None:
    """`prefect deploy --all` accepts prefect.yaml and every entrypoint in it resolves."""
    import os
    import subprocess
    import sys

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="envforge-process", type="process"),
                                overwrite=True)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "ENVFORGE_PROJECT_DIR": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("run-template/run-template")
        create = client.read_deployment_by_name("create-environment/create-environment")
        reaper = client.read_deployment_by_name("reap-environments/reap-environments")
        refresher = client.read_deployment_by_name("refresh-data/refresh-data")
    assert create.enforce_parameter_schema is True
    form = create.parameter_openapi_schema
    assert form["definitions"]["EnvironmentType"]["enum"] == ["preview", "development", "staging"]
    assert {"java-service", "node-service", "python-service"} <= set(
        form["definitions"]["TemplateName"]["enum"])
    assert all(p.get("description") for p in form["properties"].values())
    assert [s.schedule.cron for s in reaper.schedules] == ["0 * * * *"]
    assert [s.schedule.cron for s in refresher.schedules] == ["0 3 * * *"]
    assert deployment.enforce_parameter_schema is True
    assert set(deployment.parameter_openapi_schema["properties"]) == {
        "template", "parameters", "dry_run", "environment", "secrets"}
    assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {
        "directory": str(PROJECT_ROOT)}}]
    # every run starts with envforge's flow-run command (envforge.launch.flow_start), resolved at deploy
    for each in (deployment, create, reaper, refresher):
        assert each.job_variables == {
            "command": f"{PROJECT_ROOT}/.venv/bin/python -m envforge.launch.flow_start"}


def test_block_types_register_with_the_server(prefect_server: None) -> None:
    from prefect.client.orchestration import get_client

    from blocks import block_types

    for block in block_types():
        block.register_type_and_schema()
    with get_client(sync_client=True) as client:
        slugs = {b.slug for b in client.read_block_types()}
    expected = {block.get_block_type_slug() for block in block_types()}
    assert expected and expected <= slugs
