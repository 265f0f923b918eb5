"""Hostile templates through the real CLI and a Prefect flow run (issue 12, D4/D5): each ends
within its budget with one error line naming the step or file, and nothing is published.
Prefect runs steps in worker threads, so the time budget must work there (no SIGALRM)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from envforge.cli import main
from tests.helpers import commit_count, write_template

pytestmark = pytest.mark.prefect

TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: hostile}
spec:
  type: service
  steps:
    - id: fetch
      action: fetch:template
      input: {url: ./skeleton, values: {name: shop}}
    - id: publish
      action: publish:git
      input: {targetPath: "services/hostile"}
"""

LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


@pytest.mark.parametrize("files, fragments", [
    ({"skeleton/slow.txt": "a\n" + LOOP},
     ["skeleton/slow.txt", "time budget (1 s"]),
    ({"skeleton/wide.txt": "${{ '{:>999999999}'.format(1) }}"},
     ["skeleton/wide.txt:1", "refused by the sandbox"]),
], ids=["nested-loops", "format-width"])
def test_hostile_skeletons_end_within_budget(
    prefect_server: None, tmp_path: Path, envforge_home: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str], fragments: list[str],
) -> None:
    monkeypatch.setenv("ENVFORGE_RENDER_TIMEOUT_S", "1")
    template = write_template(tmp_path / "hostile", TEMPLATE, files)
    started = time.monotonic()
    assert main(["run", str(template)]) == 1
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert elapsed < 60  # a 1 s budget; the rest is the flow run's own start and end
    gitops = envforge_home / "gitops.git"
    assert not gitops.exists() or commit_count(gitops) == 1


def test_an_alias_bomb_values_file_is_one_line(
    tmp_path: Path, envforge_home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    template = write_template(tmp_path / "hostile", TEMPLATE, {"skeleton/a.txt": "x"})
    values = tmp_path / "values.yaml"
    values.write_text("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n"
        for i in range(8)))
    started = time.monotonic()
    assert main(["run", str(template), "--values", str(values)]) == 1
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "--values" in err and "expands to more than" in err and "Traceback" not in err
