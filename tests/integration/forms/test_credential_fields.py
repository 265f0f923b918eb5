"""A credential field of an environment form, end to end on a real Prefect server: the run's
stored parameters hold the Vault reference, the flow (run by a real process worker) reads the
value through it, and the value is in no parameter, log line or Git commit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from uuid import UUID

import pytest

from envforge.core.config import PROJECT_ROOT
from tests.helpers import git
from tests.integration.lifecycle.conftest import gitops
from tests.integration.secrets.conftest import VaultTarget, vault_service

__all__ = ["gitops", "vault_service"]

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

SECRET = f"db-pw-{uuid.uuid4().hex}"
TEMPLATE = """\
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: with-secret, title: Service with a database password}
spec:
  owner: group:platform
  type: service
  parameters:
    - title: Service
      required: [name, dbPassword]
      properties:
        name: {title: Name, type: string}
        dbPassword: {title: Database password, type: string, ui:field: Secret}
  steps:
    - id: check
      name: Prove the value arrived, without showing it
      action: debug:log
      input:
        message: "password length ${{ parameters.dbPassword | length }}"
    - id: manifests
      action: fetch:template
      input:
        url: ./skeleton
        values: {name: "${{ parameters.name }}"}
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: "${{ values.name }}"}
data: {greeting: hello}
"""


@pytest.mark.timeout(420)
def test_credential_field_is_a_reference_and_the_flow_reads_the_value(
        prefect_server: None, gitops: Path, vault_service: VaultTarget, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.settings import PREFECT_API_URL

    from envforge.environments.deployments import register_template_deployments
    from envforge.templating.loader import TemplateCatalog

    directory = tmp_path / "templates" / "with-secret"
    directory.mkdir(parents=True)
    (directory / "template.yaml").write_text(TEMPLATE)
    (directory / "skeleton" / "manifests").mkdir(parents=True)
    (directory / "skeleton" / "manifests" / "configmap.yaml").write_text(CONFIGMAP)
    monkeypatch.setenv("ENVFORGE_TEMPLATES_PATH", str(tmp_path / "templates"))
    monkeypatch.setenv("VAULT_ADDR", vault_service.address)
    monkeypatch.setenv("VAULT_TOKEN", vault_service.root_token)
    path = f"forms-{uuid.uuid4().hex[:6]}/db"
    vault_service.put_secret(path, {"password": SECRET})
    reference = f"vault:kv/{path}#password"
    name = f"cred-{uuid.uuid4().hex[:6]}"
    pool = f"forms-{uuid.uuid4().hex[:6]}"

    template = TemplateCatalog([tmp_path / "templates"]).load("with-secret")
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"), overwrite=True)
        [_, deployment] = register_template_deployments([(template, str(directory))],
                                                        work_pool=pool)
        schema = client.read_deployment(UUID(deployment.id)).parameter_openapi_schema
        assert schema is not None and schema["properties"]["dbPassword"]["title"] == \
            "Database password (Vault reference)"
        run = client.create_flow_run_from_deployment(
            UUID(deployment.id), parameters={"name": name, "dbPassword": reference})
        subprocess.run([sys.executable, "-m", "prefect", "worker", "start", "--pool", pool,
                        "--type", "process", "--run-once"],
                       env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
                       cwd=PROJECT_ROOT, capture_output=True, timeout=300, check=False)
        deadline = time.monotonic() + 60
        finished = client.read_flow_run(run.id)
        while not (finished.state and finished.state.is_final()) and \
                time.monotonic() < deadline:
            time.sleep(1)
            finished = client.read_flow_run(run.id)
        assert finished.state is not None and finished.state.is_completed(), \
            finished.state.message if finished.state else None
        # what Prefect stores: the reference, as the form sent it
        assert finished.parameters == {"name": name, "dbPassword": reference}
        logs = client.read_logs(log_filter=LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    messages = [log.message for log in logs]
    assert f"password length {len(SECRET)}" in messages  # the value reached the template
    assert not any(SECRET in m for m in messages)

    history = git("--git-dir", str(gitops), "log", "-p", "--all")
    assert f"environments/{name}/environment.yaml" in history
    assert SECRET not in history
