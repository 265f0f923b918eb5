"""The run-template flow on a real temporary Prefect server, publishing to real Git remotes."""

from pathlib import Path
from uuid import UUID

import pytest

from envforge.errors import ParameterError, StepFailedError, TemporaryError
from tests.helpers import commit_count, reject_pushes, remote_files, write_template

pytestmark = pytest.mark.prefect

TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {{name: svc}}
spec:
  type: service
  parameters:
    - required: [name]
      properties:
        name: {{type: string, pattern: '^[a-z][-a-z0-9]*$'}}
        verbose: {{type: boolean, default: false}}
  steps:
    - id: fetch-base
      name: Fetch skeleton
      action: fetch:template
      input:
        url: ./skeleton
        values: {{name: "${{{{ parameters.name }}}}"}}
    - id: log
      action: debug:log
      if: ${{{{ parameters.verbose }}}}
      input: {{listWorkspace: true}}
    - id: publish
      action: publish:git
      input:
        repoUrl: {first}
        targetPath: services/${{{{ parameters.name }}}}
{extra}
  output:
    links:
      - title: Commit
        url: ${{{{ steps.publish.output.commitHash }}}}
"""


def _template(tmp_path: Path, first: Path, extra: str = "") -> Path:
    return write_template(
        tmp_path / "svc",
        TEMPLATE.format(first=first.as_uri(), extra=extra),
        {"skeleton/${{ values.name }}.yaml": "name: ${{ values.name }}\n"},
    )


def _task_run_names(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
        )
    return [r.name for r in runs]


def test_each_step_is_a_task_run_named_after_it(prefect_server: None, tmp_path: Path,
                                                bare_repo: Path) -> None:
    from flows.run_template import run_template

    result = run_template(str(_template(tmp_path, bare_repo)), {"name": "shop"})
    assert [s["status"] for s in result["steps"]] == ["completed", "skipped", "completed"]
    assert remote_files(bare_repo) == ["services/shop/shop.yaml"]
    assert len(result["output"]["links"][0]["url"]) == 40  # the commit hash
    assert sorted(_task_run_names(result["run_id"])) == ["fetch-base", "publish"]


def test_dry_run_changes_nothing(prefect_server: None, tmp_path: Path, bare_repo: Path) -> None:
    from flows.run_template import run_template

    result = run_template(str(_template(tmp_path, bare_repo)), {"name": "shop", "verbose": True},
                          dry_run=True)
    assert [s["status"] for s in result["steps"]] == ["dry-run", "dry-run", "faked"]
    assert commit_count(bare_repo) == 0
    assert result["output"]["links"][0]["url"] is None  # the declared default of commitHash


def test_a_failed_step_rolls_back_earlier_publishes(prefect_server: None, tmp_path: Path,
                                                    bare_repo: Path) -> None:
    from flows.run_template import run_template

    frozen = tmp_path / "frozen.git"
    frozen.mkdir()
    from tests.helpers import git

    git("init", "--quiet", "--bare", "--initial-branch=main", str(frozen))
    reject_pushes(frozen, "this repository is frozen")
    extra = f"""    - id: publish-mirror
      action: publish:git
      input: {{repoUrl: {frozen.as_uri()}, targetPath: mirror}}"""
    seed = tmp_path / "seed"
    git("clone", "--quiet", str(bare_repo), str(seed))
    (seed / "README.md").write_text("GitOps repository\n")
    git("add", "README.md", cwd=seed)
    git("commit", "--quiet", "-m", "initial", cwd=seed)
    git("push", "--quiet", "origin", "HEAD:main", cwd=seed)
    with pytest.raises(StepFailedError) as info:
        run_template(str(_template(tmp_path, bare_repo, extra)), {"name": "shop"})
    assert info.value.step_id == "publish-mirror"
    assert info.value.rolled_back == ["publish", "fetch-base"]
    assert "refused the push" in str(info.value)
    assert commit_count(bare_repo) == 1  # the publish was taken back: only "initial" remains
    assert remote_files(bare_repo) == ["README.md"]
    assert commit_count(frozen) == 0


def test_bad_parameters_fail_the_flow_before_any_step(prefect_server: None, tmp_path: Path,
                                                      bare_repo: Path) -> None:
    from flows.run_template import run_template

    with pytest.raises(ParameterError, match=r"\$\.name: 'Not A Label' does not match"):
        run_template(str(_template(tmp_path, bare_repo)), {"name": "Not A Label"})
    assert commit_count(bare_repo) == 0


def test_scaffold_runs_the_template_its_deployment_names(
    prefect_server: None, tmp_path: Path, bare_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.run_template import scaffold

    monkeypatch.setenv("ENVFORGE_TEMPLATE", str(_template(tmp_path, bare_repo)))
    result = scaffold(name="from-form")
    assert result["template"] == "svc"
    assert remote_files(bare_repo) == ["services/from-form/from-form.yaml"]


def test_only_temporary_errors_are_retried() -> None:
    from prefect.states import Failed

    from flows.run_template import _retry_only_temporary

    assert _retry_only_temporary(None, None, Failed(data=TemporaryError("blip"))) is True
    assert _retry_only_temporary(None, None, Failed(data=RuntimeError("broken"))) is False
