"""`envforge run` end to end: a real flow run, real Git, output as a person sees it."""

from pathlib import Path

import pytest

from envforge.cli import main
from tests.helpers import commit_count, reject_pushes, remote_files

pytestmark = pytest.mark.prefect

REAL_TEMPLATES = ["python-service", "node-service", "java-service"]


@pytest.mark.parametrize("template", REAL_TEMPLATES)
def test_each_real_template_runs_for_real_and_dry(
    prefect_server: None, template: str, envforge_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gitops = envforge_home / "gitops.git"
    assert main(["run", template, "--set", "name=demo-app", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "(dry run)" in out and "fake" in out
    assert not gitops.exists()  # a dry run does not even create the embedded repository

    assert main(["run", template, "--set", "name=demo-app"]) == 0
    out = capsys.readouterr().out
    for step in ("fetch-base", "publish"):
        assert step in out
    assert "FAIL" not in out and "links:" in out
    files = remote_files(gitops)
    assert commit_count(gitops) == 2
    assert "services/demo-app/Dockerfile" in files
    assert {"services/demo-app/manifests/deployment.yaml",
            "services/demo-app/manifests/service.yaml",
            "services/demo-app/manifests/ingress.yaml"} <= set(files)


def test_a_rejected_push_fails_with_one_line_and_publishes_nothing(
    prefect_server: None, envforge_home: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, bare_repo: Path,
) -> None:
    monkeypatch.setenv("ENVFORGE_GITOPS_URL", bare_repo.as_uri())
    reject_pushes(bare_repo, "read-only mirror")
    assert main(["run", "python-service", "--set", "name=demo-app"]) == 1
    captured = capsys.readouterr()
    error_lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert "step 'publish' (publish:git) failed" in error_lines[0]
    assert "refused the push" in error_lines[0]
    assert "FAIL" in captured.out and "undone" in captured.out
    assert remote_files(bare_repo) == []
