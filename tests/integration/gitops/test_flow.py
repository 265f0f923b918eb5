"""publish:gitops as a Prefect task run inside the run-template flow."""

from pathlib import Path

import pytest

from tests.helpers import git, remote_files
from tests.integration.gitops.test_cli_and_runner import _template

pytestmark = pytest.mark.prefect


def test_the_flow_publishes_an_environment(prefect_server: None, tmp_path: Path,
                                           bare_repo: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.run_template import run_template

    monkeypatch.setenv("ENVFORGE_GITOPS_URL", bare_repo.as_uri())
    result = run_template(template=str(_template(tmp_path)), parameters={"replicas": 2},
                          environment="pr-7")
    statuses = {step["id"]: step["status"] for step in result["steps"]}
    assert statuses == {"fetch": "completed", "environment": "completed", "after": "skipped"}
    assert "argocd/pr-7.yaml" in remote_files(bare_repo)
    assert "replicas: 2" in git("--git-dir", str(bare_repo), "show",
                                "main:environments/pr-7/manifests/deployment.yaml")
