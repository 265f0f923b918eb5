"""fs:rename and fs:delete: Backstage's workspace file actions, with its input names.

Both act only inside the run's workspace (``..``, absolute paths and symbolic links leading
out are refused). fs:delete moves what it deletes to ``<workspace>.undo`` (beside the
workspace, so nothing of it is published) and rollback moves it back.
"""

from __future__ import annotations

import glob
import shutil
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.errors import ActionError
from envforge.paths import resolve_inside, safe_relative


def undo_dir(workspace: Path) -> Path:
    """Beside the workspace (removed with it by TemplateRun.close)."""
    return workspace.with_name(workspace.name + ".undo")


class RenameItem(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from", description="Workspace-relative path to rename.")
    to: str = Field(description="Workspace-relative new path.")
    overwrite: bool = Field(False, description="Replace an existing file at 'to'.")


class RenameInput(ActionInput):
    files: list[RenameItem] = Field(description="Files or folders to rename, in order.")


class RenameOutput(ActionOutput):
    renamed: list[list[str]] = Field(default_factory=list, description="[from, to] pairs done.")


class FsRename(Action[RenameInput, RenameOutput]):
    id = "fs:rename"
    description = "Rename files or folders in the workspace (Backstage's fs:rename)."
    input_model = RenameInput
    output_model = RenameOutput
    supports_dry_run = True
    examples = [{"id": "rename", "action": "fs:rename", "input": {
        "files": [{"from": "README.tmpl.md", "to": "README.md"}]}}]

    def run(self, ctx: ActionContext, params: RenameInput) -> RenameOutput:
        done: list[list[str]] = []
        try:
            for item in params.files:
                source = resolve_inside(ctx.workspace, item.from_, "workspace")
                target = resolve_inside(ctx.workspace, item.to, "workspace")
                if not source.exists():
                    raise ActionError(f"step {ctx.step_id!r} (fs:rename): {item.from_!r} does "
                                      "not exist in the workspace")
                if target.exists() and not item.overwrite:
                    raise ActionError(f"step {ctx.step_id!r} (fs:rename): {item.to!r} already "
                                      "exists; set overwrite: true to replace it")
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    _remove(target)
                source.rename(target)
                done.append([item.from_, item.to])
        except Exception:
            for source_rel, target_rel in reversed(done):
                (ctx.workspace / target_rel).rename(ctx.workspace / source_rel)
            raise
        return RenameOutput(renamed=done)

    def rollback(self, ctx: ActionContext, params: RenameInput, output: RenameOutput) -> None:
        for source_rel, target_rel in reversed(output.renamed):
            target = ctx.workspace / target_rel
            if target.exists():
                target.rename(ctx.workspace / source_rel)


class DeleteInput(ActionInput):
    files: list[str] = Field(description="Workspace-relative paths or globs to delete.")


class DeleteOutput(ActionOutput):
    deleted: list[str] = Field(default_factory=list)
    undo: str | None = Field(None, description="Where the deleted files are kept for rollback.")


class FsDelete(Action[DeleteInput, DeleteOutput]):
    id = "fs:delete"
    description = "Delete files or folders (globs allowed) from the workspace."
    input_model = DeleteInput
    output_model = DeleteOutput
    supports_dry_run = True
    examples = [{"id": "clean", "action": "fs:delete", "input": {"files": ["docs/*.tmp"]}}]

    def run(self, ctx: ActionContext, params: DeleteInput) -> DeleteOutput:
        undo = undo_dir(ctx.workspace) / uuid.uuid4().hex[:8]
        deleted: list[str] = []
        for pattern in params.files:
            safe_relative(pattern, "workspace")
            for match in sorted(glob.glob(pattern, root_dir=ctx.workspace, recursive=True)):
                path = resolve_inside(ctx.workspace, match, "workspace")
                if not path.exists() and not path.is_symlink():
                    continue
                keep = undo / match
                keep.parent.mkdir(parents=True, exist_ok=True)
                path.rename(keep)
                deleted.append(match)
        if not deleted:
            shutil.rmtree(undo, ignore_errors=True)
        return DeleteOutput(deleted=deleted, undo=undo.name if deleted else None)

    def rollback(self, ctx: ActionContext, params: DeleteInput, output: DeleteOutput) -> None:
        if not output.undo:
            return
        undo = undo_dir(ctx.workspace) / output.undo
        for rel in output.deleted:
            kept = undo / rel
            if kept.exists():
                target = ctx.workspace / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                kept.rename(target)
        shutil.rmtree(undo, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


ACTIONS: list[type[Action[Any, Any]]] = [FsRename, FsDelete]
