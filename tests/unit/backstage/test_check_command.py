"""`envforge templates check DIR...` and `templates validate --strict` on templates of our own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envforge.actions.fetch_sources import _split
from envforge.cli import main
from tests.unit.backstage.test_backstage_format import make


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    root = tmp_path / "collection"
    (root / "skeletons/base").mkdir(parents=True)
    (root / "skeletons/base/README.md").write_text("${{ values.name }} ${{ values.extra }}\n")
    make(root / "templates", """\
      parameters:
        - required: [name]
          properties:
            name: {type: string}
      steps:
        - id: fetch
          action: fetch:template
          input: {url: ../../skeletons/base, values: {name: '${{ parameters.name }}'}}
    """, name="shared-skeleton")
    make(root / "templates", """\
      steps:
        - id: publish
          action: acme:publish
          input: {repoUrl: 'github.com?owner=o&repo=r'}
    """, name="needs-github")
    make(root / "templates", """\
      steps:
        - {id: ok, action: debug:log, input: {message: hi}}
    """, name="clean")
    return root


def test_check_prints_the_conformance_table(collection: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "check", str(collection), "--output", "json"]) == 0
    out = capsys.readouterr().out
    rows = {r["template"]: r for r in json.loads(out[: out.rindex("]") + 1])}
    assert set(rows) == {"shared-skeleton", "needs-github", "clean"}
    assert all(r["dry_run_required"] == "ok" and r["dry_run_all"] == "ok" for r in rows.values())
    assert rows["clean"]["validate"] == "ok" and rows["clean"]["warnings"] == 0
    assert rows["needs-github"]["unknown_actions"] == "acme:publish"
    assert rows["shared-skeleton"]["validate"] == "ok"
    assert "'extra' is undefined" in rows["shared-skeleton"]["first_problem"]
    assert "3 template(s): 3 dry-run ok with both value sets, 2 valid (no errors), " \
           "1 valid with --strict" in out


def test_validate_strict_turns_warnings_into_failures(
        collection: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVFORGE_TEMPLATES_PATH", str(collection))
    target = str(collection / "templates/shared-skeleton")
    assert main(["templates", "validate", target]) == 0
    assert "warning: ../../skeletons/base/README.md: 'extra' is undefined" in \
        capsys.readouterr().out
    assert main(["templates", "validate", "--strict", target]) == 1


def test_browser_tree_urls_are_git_repositories() -> None:
    assert _split("https://github.com/o/r/tree/main/a/b") == (
        "https://github.com/o/r.git", "a/b", "main", True)
    assert _split("https://gitlab.com/g/r/-/tree/dev/x") == (
        "https://gitlab.com/g/r.git", "x", "dev", True)
    assert _split("https://h/x.tar.gz//sub") == ("https://h/x.tar.gz", "sub", "", False)
