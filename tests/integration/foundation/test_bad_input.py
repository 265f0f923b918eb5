"""Every bad input of the foundation, through the real CLI and flow: a clear one-line error
that names the problem, and nothing published to the (real) GitOps remote."""

from pathlib import Path

import pytest

from envforge.cli import main
from tests.helpers import commit_count, remote_files, write_template

pytestmark = pytest.mark.prefect

HEAD = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: bad}
spec:
  type: service
  parameters:
    properties:
      name: {type: string, default: shop}
  steps:
    - id: fetch
      action: fetch:template
      input: {url: ./skeleton, values: {name: "${{ parameters.name }}"}}
    - id: publish
      action: publish:git
      input: {targetPath: "services/${{ parameters.name }}"}
"""

CASES = {
    "expression-bomb": (
        HEAD + "    - {id: announce, action: debug:log, input: {message: \"${{ range(10 ** 9) | list }}\"}}\n",
        {"skeleton/a.txt": "x"},
        ["step 'announce' field input.message", "refused by the sandbox"],
    ),
    "sandbox-escape": (
        HEAD + "    - {id: sneak, action: debug:log, input: {message: \"${{ ''.__class__.__mro__ }}\"}}\n",
        {"skeleton/a.txt": "x"},
        ["step 'sneak' field input.message", "not allowed in the sandbox"],
    ),
    "skeleton-name-escape": (
        HEAD.replace('values: {name: "${{ parameters.name }}"}',
                     'values: {name: "${{ parameters.name }}", where: "../../../outside"}'),
        {"skeleton/${{ values.where }}.txt": "x"},
        ["step 'fetch' (fetch:template) failed", "escapes the workspace", "'..' is not allowed"],
    ),
    "publish-path-escape": (
        HEAD.replace('targetPath: "services/${{ parameters.name }}"', 'targetPath: "../../etc"'),
        {"skeleton/a.txt": "x"},
        ["step 'publish' (publish:git) failed", "escapes the repository"],
    ),
    "publish-absolute-path": (
        HEAD.replace('targetPath: "services/${{ parameters.name }}"', 'targetPath: "/srv/apps"'),
        {"skeleton/a.txt": "x"},
        ["step 'publish' (publish:git) failed", "absolute paths are not allowed"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_names_the_problem_and_publishes_nothing(
    prefect_server: None, case: str, tmp_path: Path, envforge_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    yaml_text, files, expected = CASES[case]
    template = write_template(tmp_path / "bad", yaml_text, files)
    assert main(["run", str(template)]) == 1
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, err
    for fragment in expected:
        assert fragment in error_lines[0], (fragment, error_lines[0])
    assert "Traceback" not in err
    _assert_nothing_published(envforge_home / "gitops.git")
    assert not (tmp_path / "outside.txt").exists()


def _assert_nothing_published(gitops: Path) -> None:
    """Either the run never reached the repository, or only its initial commit is there."""
    if gitops.exists():
        assert commit_count(gitops) == 1
        assert remote_files(gitops) == ["README.md", "argocd/README.md"]  # the initial commit


def test_a_symlink_in_the_skeleton_leading_out_is_refused(
    prefect_server: None, tmp_path: Path, envforge_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("not for the repository")
    template = write_template(tmp_path / "bad", HEAD, {"skeleton/a.txt": "x"})
    (template / "skeleton" / "leak.txt").symlink_to(secret)
    assert main(["run", str(template)]) == 1
    err = capsys.readouterr().err
    assert "symbolic link leads outside" in err
    _assert_nothing_published(envforge_home / "gitops.git")


def test_a_credential_in_a_rendered_file_is_never_committed(
    prefect_server: None, tmp_path: Path, envforge_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234\n-----END RSA PRIVATE KEY-----\n"
    template = write_template(tmp_path / "bad", HEAD, {"skeleton/deploy-key.pem": key})
    assert main(["run", str(template)]) == 1
    err = capsys.readouterr().err
    assert "deploy-key.pem" in err and "MIIEowIBAAKCAQEA1234" not in err
    _assert_nothing_published(envforge_home / "gitops.git")
