"""`run --dry-run --keep-files DIR`, `templates check --keep-files DIR` and `--catalog-root`."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.cli import main
from tests.unit.backstage.test_backstage_format import make

TEMPLATE = """\
  parameters:
    - properties:
        name: {type: string, default: demo-service}
  steps:
    - id: fetch
      action: fetch:template
      input:
        url: ../../skeletons/base
        values: {name: '${{ parameters.name }}', on: '${{ parameters.name | title }}'}
    - id: log
      action: debug:log
      input: {message: done}
"""


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    root = tmp_path / "collection"
    (root / "skeletons/base/${{ values.name }}").mkdir(parents=True)
    (root / "skeletons/base/README.md").write_text("# ${{ values.on }}\n")
    (root / "skeletons/base/${{ values.name }}/main.js").write_text("a === b\n")
    make(root / "templates", TEMPLATE, name="shared")
    return root


def test_run_dry_run_keeps_the_workspace(collection: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "kept"
    code = main(["run", str(collection / "templates/shared"), "--dry-run", "--keep-files",
                 str(out), "--catalog-root", str(collection)])
    assert code == 0
    assert (out / "README.md").read_text() == "# Demo-service\n"
    assert (out / "demo-service/main.js").read_text() == "a === b\n"
    assert "2 file(s) written to" in capsys.readouterr().out


def test_without_a_catalog_root_the_error_says_how_to_set_it(
        collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(collection / "templates/shared"), "--dry-run", "--keep-files",
                 str(tmp_path / "kept")]) != 0
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "--catalog-root DIR" in errors[0]


def test_keep_files_needs_a_dry_run_and_an_empty_folder(
        collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(collection / "templates/shared"), "--keep-files",
                 str(tmp_path)]) != 0
    assert "add --dry-run" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full/x").write_text("x")
    assert main(["run", str(collection / "templates/shared"), "--dry-run", "--keep-files",
                 str(tmp_path / "full"), "--catalog-root", str(collection)]) != 0
    assert "not an empty folder" in capsys.readouterr().err


def test_check_keeps_each_templates_files(collection: Path, tmp_path: Path) -> None:
    out = tmp_path / "check"
    main(["templates", "check", str(collection), "--keep-files", str(out)])
    assert (out / "shared/README.md").read_text() == "# Demo-service\n"
    assert (out / "shared/demo-service/main.js").is_file()


def test_keeping_files_never_writes_through_a_link_in_the_target(tmp_path: Path) -> None:
    """The kept files go through the workspace file API: a link that appears in the target
    folder (another user's, in a shared folder, between the empty check and the copy) is not
    followed; the folder it points at stays untouched, and links of the workspace are copied
    as links."""
    from envforge.cli.keep_files import copy_workspace
    from envforge.errors import FileRefusedError

    workspace, target, outside = tmp_path / "ws", tmp_path / "kept", tmp_path / "outside"
    (workspace / "manifests").mkdir(parents=True)
    (workspace / "manifests" / "app.yaml").write_text("kind: Deployment\n")
    (workspace / "link").symlink_to("/etc/hostname")
    outside.mkdir()
    target.mkdir()
    (target / "manifests").symlink_to(outside)
    with pytest.raises(FileRefusedError):
        copy_workspace(workspace, target)
    assert list(outside.iterdir()) == []

    clean = tmp_path / "kept2"
    clean.mkdir()
    assert copy_workspace(workspace, clean) == ["link", "manifests/app.yaml"]
    assert (clean / "link").is_symlink() and str((clean / "link").readlink()) == "/etc/hostname"
