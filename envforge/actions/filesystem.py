"""fs:rename and fs:delete: Backstage's workspace file actions, with its input names.

Both act only inside the run's workspace, through its file API (envforge.capabilities): no
symbolic link is followed, ``.git`` is never touched, and a bad path is one line naming the
step and the file (never a raw OSError with a temp path). fs:delete moves what it deletes to
``<workspace>.undo`` (beside the workspace, so nothing of it is published) and rollback moves
it back.
"""

from __future__ import annotations

import glob
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.core.paths import safe_relative
from envforge.errors import ActionError, CapabilityError, PathEscapeError


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
            with _one_line(ctx, self.id):
                for item in params.files:
                    ctx.files.rename(item.from_, item.to, overwrite=item.overwrite)
                    done.append([item.from_, item.to])
        except Exception:
            for source_rel, target_rel in reversed(done):
                ctx.files.rename(target_rel, source_rel)
            raise
        return RenameOutput(renamed=done)

    def rollback(self, ctx: ActionContext, params: RenameInput, output: RenameOutput) -> None:
        for source_rel, target_rel in reversed(output.renamed):
            if ctx.files.exists(target_rel):
                ctx.files.rename(target_rel, source_rel, overwrite=True)


@contextmanager
def _one_line(ctx: ActionContext, action_id: str) -> Iterator[None]:
    """The file API's refusals as the step's one-line error."""
    try:
        yield
    except (CapabilityError, PathEscapeError) as e:
        raise ActionError(f"step {ctx.step_id!r} ({action_id}): {e}") from None


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
        undo_root = undo_dir(ctx.workspace)
        token = uuid.uuid4().hex[:8]
        undo_root.joinpath(token).mkdir(parents=True, exist_ok=True)
        undo = ctx.capabilities.files(undo_root / token, "undo folder")
        deleted: list[str] = []
        with _one_line(ctx, self.id):
            for pattern in params.files:
                safe_relative(pattern, "workspace")
                for match in sorted(glob.glob(pattern, root_dir=ctx.workspace,
                                              recursive=True)):
                    if not ctx.files.exists(match):
                        continue  # gone with a folder matched before, or under a link
                    ctx.files.move_to(match, undo, match)
                    deleted.append(match)
        if not deleted:
            ctx.capabilities.files(undo_root, "undo folder").remove(token)
        return DeleteOutput(deleted=deleted, undo=token if deleted else None)

    def rollback(self, ctx: ActionContext, params: DeleteInput, output: DeleteOutput) -> None:
        if not output.undo:
            return
        undo_root = undo_dir(ctx.workspace)
        undo = ctx.capabilities.files(undo_root / output.undo, "undo folder")
        for rel in output.deleted:
            if undo.exists(rel):
                undo.move_to(rel, ctx.files, rel)
        ctx.capabilities.files(undo_root, "undo folder").remove(output.undo)


ACTIONS: list[type[Action[Any, Any]]] = [FsRename, FsDelete]
