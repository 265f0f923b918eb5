"""${{ secrets.X }} through a real Prefect server: a value passed with ``envforge run --secret``
or named as a Prefect Secret block renders into a skeleton file and an action's input, and is
absent from the flow run's parameters, its logs, its task runs' states and its artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envforge.cli import main
from tests.helpers import write_template

pytestmark = pytest.mark.prefect

VALUE = "tok-8c1d5e2f9a7b"

TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: with-secrets}
spec:
  type: service
  parameters:
    - properties:
        name: {type: string, default: shop}
  steps:
    - id: fetch
      action: fetch:template
      input:
        url: ./skeleton
        values: {name: "${{ parameters.name }}", token: "${{ secrets.API_TOKEN }}"}
    - id: log
      action: debug:log
      input: {message: "calling the API with ${{ secrets.API_TOKEN }}", listWorkspace: true}
  output:
    text:
      - title: token
        content: "${{ secrets.API_TOKEN }}"
"""


def _everything_prefect_kept(flow_run_id: Any) -> tuple[str, dict[str, Any]]:
    """Logs, flow-run and task-run states and artifacts of one flow run, as one text."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        flow_run = client.read_flow_run(flow_run_id)
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[flow_run_id])))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    parts = [entry.message for entry in logs]
    parts += [json.dumps(flow_run.parameters), str(flow_run.state.message if flow_run.state
                                                    else "")]
    parts += [str(t.state.message if t.state else "") for t in task_runs]
    parts += [json.dumps(a.model_dump(mode="json")) for a in artifacts]
    return "\n".join(parts), dict(flow_run.parameters)


def _latest_flow_run_id() -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)
    return runs[0].id


def test_cli_secret_renders_and_reaches_no_prefect_record(
    prefect_server: None, tmp_path: Path, envforge_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    template = write_template(tmp_path / "t", TEMPLATE, {
        "skeleton/.npmrc": "//registry.example/:_authToken=${{ values.token }}\n"})
    secret_file = tmp_path / "token"
    secret_file.write_text(VALUE + "\n")
    keep = tmp_path / "kept"
    # the dry run with its files kept: the skeleton got the value
    assert main(["run", str(template), "--dry-run", "--keep-files", str(keep),
                 "--secret", f"API_TOKEN=@{secret_file}"]) == 0
    assert (keep / ".npmrc").read_text() == f"//registry.example/:_authToken={VALUE}\n"
    capsys.readouterr()
    # the real run as a Prefect flow run
    assert main(["run", str(template), "--secret", f"API_TOKEN=@{secret_file}"]) == 0
    out = capsys.readouterr().out
    assert "token:\n  ********" in out and VALUE not in out
    kept, parameters = _everything_prefect_kept(_latest_flow_run_id())
    assert "calling the API with ********" in kept  # the step's log did arrive, masked
    assert VALUE not in kept
    assert parameters["secrets"] is None  # the CLI hands values over in-process only


def test_a_secret_block_named_in_the_flow_parameter(prefect_server: None, tmp_path: Path,
                                                     envforge_home: Path) -> None:
    from prefect.blocks.system import Secret

    from envforge.errors import ConfigurationError
    from flows.run_template import run_template

    template = write_template(tmp_path / "t", TEMPLATE, {
        "skeleton/.npmrc": "//registry.example/:_authToken=${{ values.token }}\n"})
    Secret(value=VALUE).save("envforge-test-api-token", overwrite=True)
    state = run_template(template=str(template), secrets=["API_TOKEN=envforge-test-api-token"],
                         return_state=True)
    assert state.is_completed()
    assert state.result()["output"]["text"][0]["content"] == "********"
    kept, parameters = _everything_prefect_kept(state.state_details.flow_run_id)
    assert parameters["secrets"] == ["API_TOKEN=envforge-test-api-token"]
    assert "calling the API with ********" in kept and VALUE not in kept
    with pytest.raises(ConfigurationError, match=r"secrets parameter, secrets\.API_TOKEN: no "
                       r"Secret block named 'api-token'"):
        run_template(template=str(template), secrets=["API_TOKEN"])
    state = run_template(template=str(template), return_state=True)  # no secret at all
    assert state.is_failed()
    assert "--secret API_TOKEN=VALUE" in str(state.message)
