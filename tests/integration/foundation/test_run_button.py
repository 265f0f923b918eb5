"""The run button for real: a deployment registered by `envforge deploy`, a flow run created
through the Prefect API with the form's values, and a real process worker that executes it."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envforge.core.config import PROJECT_ROOT
from envforge.environments.deployments import register_template_deployments
from envforge.templating.loader import load_template
from tests.helpers import remote_files, start_warm_runner

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


@pytest.mark.parametrize("start", ["cold", "warm"])
def test_a_form_submission_runs_on_a_process_worker(prefect_server: None, bare_repo: Path,
                                                    envforge_home: Path, tmp_path: Path,
                                                    start: str) -> None:
    """Started cold (envforge.launch.flow_start without a warm runner) and warm (an engine forked from
    envforge.launch.warm_runner): either way the scaffold flow takes the signature of the template its
    deployment names (ENVFORGE_TEMPLATE, read when the flow module is imported)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    template = load_template(PROJECT_ROOT / "templates" / "python-service")
    register_template_deployments([(template, str(template.directory))], work_pool="button-pool")
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("scaffold/python-service")
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"name": "from-button", "replicas": 2})

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "ENVFORGE_GITOPS_URL": bare_repo.as_uri(), "ENVFORGE_HOME": str(envforge_home)}
    env.pop("ENVFORGE_WARM_RUNNER_SOCKET", None)
    warm, warm_log = None, tmp_path / "warm.log"
    if start == "warm":
        env["ENVFORGE_WARM_RUNNER_SOCKET"] = str(tmp_path / "warm" / "socket")
        warm = start_warm_runner(Path(env["ENVFORGE_WARM_RUNNER_SOCKET"]), warm_log, env)
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "button-pool",
         "--run-once"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output, _ = worker.communicate(timeout=240)
    finally:
        if worker.poll() is None:
            worker.kill()
        if warm is not None:
            warm.terminate()
            warm.wait(30)
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 30
        state = client.read_flow_run(run.id).state
        while state is not None and not state.is_final() and time.monotonic() < deadline:
            time.sleep(1)
            state = client.read_flow_run(run.id).state
    assert state is not None and state.is_completed(), output[-3000:]
    files = remote_files(bare_repo)
    assert "services/from-button/manifests/deployment.yaml" in files
    deployment_yaml = subprocess.run(
        ["git", "--git-dir", str(bare_repo), "show",
         "main:services/from-button/manifests/deployment.yaml"],
        check=True, capture_output=True, text=True).stdout
    assert "replicas: 2" in deployment_yaml
    forked = f"flow run {run.id}: engine pid"
    went_warm = warm_log.exists() and forked in warm_log.read_text()
    assert went_warm == (start == "warm"), output[-3000:]
