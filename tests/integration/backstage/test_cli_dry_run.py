"""A Backstage template with an action envforge lacks, through the CLI and a Prefect flow:
a dry run lists it and renders the rest with placeholders; a real run refuses to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.cli import main
from tests.helpers import write_template

pytestmark = pytest.mark.prefect

TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: Backstage_Style.template}
spec:
  type: service
  parameters:
    - required: [name]
      properties:
        name: {type: string}
        description: {type: string}
  steps:
    - action: fetch:template
      input:
        url: ./skeleton
        values: {name: "${{ parameters.name }}", description: "${{ parameters.description }}"}
    - id: 'acme:publish'
      action: acme:publish
      input: {repoUrl: "github.com?owner=o&repo=${{ parameters.name }}"}
  output:
    links:
      - title: Repository
        url: ${{ steps['acme:publish'].output.remoteUrl }}
      - title: Only with a description
        url: https://example.com
        if: ${{ parameters.description }}
"""


def test_dry_run_lists_unknown_actions_and_renders_the_rest(
    prefect_server: None, tmp_path: Path, envforge_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    template = write_template(tmp_path / "bs", TEMPLATE, {
        "skeleton/README.md": "# ${{ values.name }}\n${{ values.description }}\n"})
    assert main(["run", str(template), "--set", "name=shop", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: 1 step(s) use actions envforge does not have" in out
    assert "acme:publish (step 'acme:publish')" in out
    assert "Repository: <acme:publish output remoteUrl (dry run)>" in out
    assert "Only with a description" not in out  # output.links[].if is false
    assert main(["run", str(template), "--set", "name=shop"]) == 1
    err = capsys.readouterr().err
    assert "error: step 'acme:publish': unknown action 'acme:publish'; available actions:" in err
