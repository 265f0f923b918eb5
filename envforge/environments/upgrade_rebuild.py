"""Building again, during an upgrade, the images whose build inputs the upgrade changes.

An upgrade re-renders without running the steps that change things and carries their recorded
outputs forward (envforge.environments.upgrade_outputs). That is only right while a step's
inputs are the ones it ran with. When ``env upgrade --set ref=...`` changes what an
``image:build`` step would build, the image in the environment's files is stale: the upgrade
builds that image again (that step only; the database, Vault and Secret steps stay carried)
and, when it then commits nothing (a failure, a lost race, nothing to change), rolls the build
back, so the registry keeps no image of an upgrade that did not happen. A dry run builds
nothing: the image's outputs say it would be built again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from envforge.actions.base import ActionOutput, fake_output
from envforge.environments.upgrade_outputs import changed_inputs
from envforge.run.runner import PreparedStep, TemplateRun

#: Skipped actions an upgrade runs again when their inputs changed (the rest need env update).
REBUILT_ACTIONS = frozenset({"image:build"})


@dataclass
class RebuiltStep:
    """An image step the upgrade ran for real (or, in a dry run, would run)."""

    step_id: str
    action: str
    #: the input fields that changed (names only: a value may not be fit for a message)
    fields: list[str]
    #: the real output; None in a dry run or once rolled back
    built: ActionOutput | None = None
    undo: Callable[[], None] = field(default=lambda: None)

    def describe(self) -> str:
        return f"step {self.step_id!r} ({self.action}: {', '.join(self.fields)} changed)"


def undo_rebuilds(steps: list[RebuiltStep]) -> list[str]:
    """Roll back what the steps built, newest first (each once); the problems, as text."""
    problems = []
    for step in reversed(steps):
        if step.built is None:
            continue
        try:
            step.undo()
        except Exception as e:  # every rebuilt image gets its chance to be removed
            problems.append(f"step {step.step_id!r}: {type(e).__name__}: {e}")
        step.built = None
    return problems


def preview_output(prepared: PreparedStep) -> ActionOutput:
    """A dry run's stand-in for an image the upgrade would build again: each text field says
    so (and, unlike a render-only placeholder, is not read back from the old files)."""
    faked = fake_output(prepared.action.output_model, prepared.action.id)
    texts = {name: f"(built again by the upgrade, step {prepared.step.id})"
             for name, value in faked.model_dump().items() if isinstance(value, str)}
    return faked.model_copy(update=texts)


@dataclass
class Rebuild:
    """The step executor of an upgrade's render-only run: every step as the run decides,
    except an image step whose inputs differ from ``recorded`` (step id -> (action, input)),
    which is built for real when ``build``."""

    recorded: Mapping[str, tuple[str, dict[str, Any]]] | None
    build: bool
    steps: list[RebuiltStep] = field(default_factory=list)

    def execute(self, run: TemplateRun, prepared: PreparedStep) -> ActionOutput:
        if (self.recorded is None or not prepared.fake or prepared.each is not None
                or prepared.action.id not in REBUILT_ACTIONS):
            return run.execute(prepared)
        fields = changed_inputs(self.recorded.get(prepared.step.id, ("", {}))[1],
                                prepared.params.model_dump(mode="json"))
        if not fields:
            return run.execute(prepared)
        step = RebuiltStep(prepared.step.id, prepared.action.id, fields)
        self.steps.append(step)
        if not self.build:
            return preview_output(prepared)
        ctx = run.action_context(prepared.step.id)
        ctx.logger.info("upgrade: building step %r again (%s changed)", prepared.step.id,
                        ", ".join(fields))
        action, params = prepared.action, prepared.params
        output: ActionOutput = action.run(ctx, params)
        step.built = output
        step.undo = lambda: action.rollback(ctx, params, output)
        return output
