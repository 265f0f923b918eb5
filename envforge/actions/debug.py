"""debug:log and debug:wait, with Backstage's input names."""

from __future__ import annotations

import time
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


#: a template may pause a run, not hold a worker: Backstage caps debug:wait the same way
MAX_WAIT_S = 600.0


class DebugWaitInput(ActionInput):
    minutes: float = Field(0, ge=0, description="Minutes to wait.")
    seconds: float = Field(0, ge=0, description="Seconds to wait.")
    milliseconds: float = Field(0, ge=0, description="Milliseconds to wait.")


class DebugWaitOutput(ActionOutput):
    waited_s: float = 0.0


class DebugWait(Action[DebugWaitInput, DebugWaitOutput]):
    id = "debug:wait"
    description = f"Wait a while (at most {MAX_WAIT_S:g} s); a dry run does not wait."
    input_model = DebugWaitInput
    output_model = DebugWaitOutput
    supports_dry_run = True
    examples = [{"id": "pause", "action": "debug:wait", "input": {"seconds": 5}}]

    def run(self, ctx: ActionContext, params: DebugWaitInput) -> DebugWaitOutput:
        total = params.minutes * 60 + params.seconds + params.milliseconds / 1000
        if total > MAX_WAIT_S:
            from envforge.errors import ActionError

            raise ActionError(f"step {ctx.step_id!r} (debug:wait): {total:g} s is longer than "
                              f"the {MAX_WAIT_S:g} s debug:wait allows")
        time.sleep(total)
        return DebugWaitOutput(waited_s=total)

    def dry_run(self, ctx: ActionContext, params: DebugWaitInput) -> DebugWaitOutput:
        return DebugWaitOutput(waited_s=0.0)


ACTIONS: list[type[Action[Any, Any]]] = [DebugLog, DebugWait]
