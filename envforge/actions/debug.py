"""debug:log: write a message (and optionally the workspace's file list) to the run log."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput


class DebugLogInput(ActionInput):
    message: str | None = Field(None, description="Text to log.")
    listWorkspace: bool | Literal["with-filenames", "with-contents"] = Field(
        False, description="Also log the workspace's files (true or 'with-filenames'), or "
        "their contents ('with-contents')."
    )


class DebugLogOutput(ActionOutput):
    pass


class DebugLog(Action[DebugLogInput, DebugLogOutput]):
    id = "debug:log"
    description = "Log a message and, optionally, the files in the workspace."
    input_model = DebugLogInput
    output_model = DebugLogOutput
    supports_dry_run = True
    examples = [
        {"id": "log", "action": "debug:log",
         "input": {"message": "Hello, ${{ parameters.name }}", "listWorkspace": True}}
    ]

    def run(self, ctx: ActionContext, params: DebugLogInput) -> DebugLogOutput:
        if params.message:
            ctx.logger.info("%s", params.message)
        if params.listWorkspace:
            files = sorted(p for p in ctx.workspace.rglob("*") if p.is_file())
            ctx.logger.info("workspace holds %d file(s)", len(files))
            for file in files:
                rel = file.relative_to(ctx.workspace)
                if params.listWorkspace == "with-contents":
                    ctx.logger.info("%s:\n%s", rel, file.read_text("utf-8", errors="replace"))
                else:
                    ctx.logger.info("  %s", rel)
        return DebugLogOutput()


ACTIONS: list[type[Action[Any, Any]]] = [DebugLog]
