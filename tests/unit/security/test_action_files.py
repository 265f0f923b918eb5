"""Workspace actions (catalog:write, fs:rename, fs:delete, fetch:template) write only through
the file API: one-line errors naming the file (no raw OSError, no temp path), no link
followed, never .git."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.actions.catalog import CatalogWrite, CatalogWriteInput
from envforge.actions.fetch import FetchTemplate, FetchTemplateInput
from envforge.actions.filesystem import (
    DeleteInput,
    FsDelete,
    FsRename,
    RenameInput,
    RenameItem,
    undo_dir,
)
from envforge.capabilities import Capabilities, FileBudget
from envforge.errors import ActionError, EnvforgeError


@pytest.fixture
def ctx(tmp_path: Path) -> ActionContext:
    (tmp_path / "ws").mkdir()
    (tmp_path / "tpl").mkdir()
    return ActionContext(run_id="r", step_id="s", template_name="t",
                         template_dir=tmp_path / "tpl", workspace=tmp_path / "ws",
                         capabilities=Capabilities(file_budget=FileBudget(max_files=50)))


def _one_line(error: BaseException, ctx: ActionContext) -> str:
    message = str(error)
    assert "\n" not in message and "Traceback" not in message
    assert str(ctx.workspace) not in message  # no temp path
    return message


@pytest.mark.parametrize("path, why", [
    ("x" * 300 + ".yaml", "over 255 bytes"), ("a\0b.yaml", "NUL"),
    (".git/config", ".git"), (".GIT/config", ".git"), ("../up.yaml", "'..'"),
    ("/etc/cron.d/x", "absolute")])
def test_catalog_write_refuses_bad_paths_in_one_line(ctx: ActionContext, path: str,
                                                     why: str) -> None:
    with pytest.raises(EnvforgeError) as info:
        CatalogWrite().run(ctx, CatalogWriteInput(entity={"kind": "x"}, filePath=path))
    assert why in _one_line(info.value, ctx)
    assert list(ctx.workspace.iterdir()) == []


def test_catalog_write_never_writes_through_a_link(ctx: ActionContext, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (ctx.workspace / "docs").symlink_to(outside)
    with pytest.raises(ActionError, match="symbolic link") as info:
        CatalogWrite().run(ctx, CatalogWriteInput(entity={"kind": "x"},
                                                  filePath="docs/catalog-info.yaml"))
    _one_line(info.value, ctx)
    assert list(outside.iterdir()) == []


def test_fs_rename_errors_are_one_line_and_links_are_not_followed(
        ctx: ActionContext, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (ctx.workspace / "a.txt").write_text("a")
    (ctx.workspace / "out").symlink_to(outside)
    for item, why in ((RenameItem(**{"from": "a.txt", "to": "out/a.txt"}), "symbolic link"),
                      (RenameItem(**{"from": "missing", "to": "b"}), "does not exist"),
                      (RenameItem(**{"from": "a.txt", "to": "n" * 300}), "255 bytes"),
                      (RenameItem(**{"from": "a.txt", "to": ".git/config"}), ".git")):
        with pytest.raises(ActionError) as info:
            FsRename().run(ctx, RenameInput(files=[item]))
        assert why in _one_line(info.value, ctx)
    assert list(outside.iterdir()) == [] and (ctx.workspace / "a.txt").read_text() == "a"


def test_fs_delete_moves_a_link_not_what_it_points_at(ctx: ActionContext,
                                                      tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    (ctx.workspace / "link").symlink_to(outside)
    (ctx.workspace / "tmp.txt").write_text("t")
    out = FsDelete().run(ctx, DeleteInput(files=["link", "tmp.txt", "link/precious"]))
    assert sorted(out.deleted) == ["link", "tmp.txt"]
    assert (outside / "precious").exists()
    FsDelete().rollback(ctx, DeleteInput(files=[]), out)
    assert (ctx.workspace / "link").is_symlink() and (ctx.workspace / "tmp.txt").exists()
    assert list(undo_dir(ctx.workspace).iterdir()) == []


def test_a_skeleton_over_the_file_budget_stops_in_one_line(ctx: ActionContext) -> None:
    skeleton = ctx.template_dir / "skeleton"
    skeleton.mkdir()
    for i in range(60):
        (skeleton / f"f{i:03}.txt").write_text("x")
    with pytest.raises(EnvforgeError, match="50 files allowed") as info:
        FetchTemplate().run(ctx, FetchTemplateInput(url="./skeleton"))
    _one_line(info.value, ctx)
    assert list(ctx.workspace.iterdir()) == []  # a failed fetch leaves nothing


@pytest.mark.parametrize("name, why", [("x" * 300, "over 255 bytes"), ("a\0b", "NUL"),
                                       (".GIT", ".git"), ("sub/.git ", ".git")])
def test_a_rendered_skeleton_file_name_is_checked_in_one_line(ctx: ActionContext, name: str,
                                                              why: str) -> None:
    skeleton = ctx.template_dir / "skeleton"
    (skeleton / "${{ values.name }}").mkdir(parents=True)
    (skeleton / "${{ values.name }}" / "config").write_text("[core]\n")
    with pytest.raises(EnvforgeError) as info:
        FetchTemplate().run(ctx, FetchTemplateInput(url="./skeleton", values={"name": name}))
    assert why in _one_line(info.value, ctx)
    assert list(ctx.workspace.iterdir()) == []
