"""Running a template: render each step's input, validate it, execute it, roll back on failure.

This module knows nothing of Prefect. The flow in ``flows/run_template.py`` hands in executors
that wrap each step (and each rollback) in a Prefect task run; called without them, steps run
inline, which is what the unit tests and `templates validate` use.

Order of work for one step: evaluate ``if`` -> render ``input`` -> validate it against the
action's input model -> run (or dry-run, or fake the output in a dry run) -> record the output
for ``steps.<id>.output``. On a failure, completed steps are rolled back newest first.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput, fake_output
from envforge.actions.registry import ActionRegistry, default_registry
from envforge.errors import (
    ActionInputError,
    EnvforgeError,
    StepFailedError,
    UnknownActionError,
)
from envforge.secrets.redaction import scrub
from envforge.secrets.references import refuse_references_in_git_fields
from envforge.templating.expressions import ExpressionEngine
from envforge.templating.model import Template, TemplateStep
from envforge.templating.parameters import validate_parameters

StepStatus = Literal["completed", "skipped", "dry-run", "faked", "failed", "rolled-back"]
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
log = logging.getLogger("envforge.runner")


@dataclass(frozen=True)
class SecretRef:
    """What ``${{ secrets.NAME }}`` evaluates to: a name, never a value."""

    name: str

    def __str__(self) -> str:
        return f"secret:{self.name}"


@dataclass
class StepReport:
    id: str
    name: str
    action: str
    status: StepStatus
    duration_s: float = 0.0
    reason: str | None = None


@dataclass
class RunResult:
    template: str
    run_id: str
    dry_run: bool
    steps: list[StepReport]
    output: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PreparedStep:
    step: TemplateStep
    action: Action[Any, Any]
    params: ActionInput
    #: set in a dry run for actions that cannot dry-run (or are unknown): fake, don't run.
    fake: bool = False


StepExecutor = Callable[["TemplateRun", PreparedStep], ActionOutput]
RollbackExecutor = Callable[["TemplateRun", PreparedStep, ActionOutput], None]
Listener = Callable[[StepReport], None]


@dataclass
class TemplateRun:
    """One run of one template with validated parameters and its own workspace."""

    template: Template
    parameters: dict[str, Any]
    dry_run: bool = False
    environment: Mapping[str, Any] = field(default_factory=dict)
    secret_names: Sequence[str] = ()
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    registry: ActionRegistry = field(default_factory=default_registry)
    validate: bool = True
    workspace: Path = field(init=False)

    def __post_init__(self) -> None:
        if self.validate:
            self.parameters = validate_parameters(self.template, self.parameters)
        self.engine = ExpressionEngine()
        self.outputs: dict[str, dict[str, Any]] = {}
        self.reports: list[StepReport] = []
        self.completed: list[tuple[PreparedStep, ActionOutput]] = []
        self.workspace = Path(tempfile.mkdtemp(prefix=f"envforge-{self.template.name}-"))

    # --- what expressions see ----------------------------------------------------------

    def expression_context(self) -> dict[str, Any]:
        return {
            "parameters": self.parameters,
            "steps": {sid: {"output": out} for sid, out in self.outputs.items()},
            "environment": dict(self.environment),
            "secrets": {name: SecretRef(name) for name in self.secret_names},
        }

    def action_context(self, step_id: str, logger: Logger | None = None) -> ActionContext:
        return ActionContext(
            run_id=self.run_id,
            step_id=step_id,
            template_name=self.template.name,
            template_dir=self.template.directory,
            workspace=self.workspace,
            dry_run=self.dry_run,
            environment=dict(self.environment),
            logger=logger or logging.getLogger(f"envforge.step.{step_id}"),
        )

    # --- one step ----------------------------------------------------------------------

    def check_actions(self) -> None:
        """Before a real run: every action must exist, so nothing starts that cannot finish."""
        if self.dry_run:
            return
        for step in self.template.spec.steps:
            self.registry.get(step.action, step.id)

    def prepare(self, step: TemplateStep) -> PreparedStep | None:
        """The step ready to execute, or None when its ``if`` is false."""
        context = self.expression_context()
        where = f"step {step.id!r}"
        if step.if_ is not None and not self.engine.evaluate_condition(
            step.if_, context, f"{where} field if"
        ):
            return None
        if step.action not in self.registry and self.dry_run:
            return PreparedStep(step, _UnknownAction(step.action), ActionInput(), fake=True)
        action = self.registry.get(step.action, step.id)
        rendered = self.engine.render_value(step.input, context, f"{where} field input")
        if action.git_bound:
            refuse_references_in_git_fields(rendered, f"{where} field input")
        try:
            params = action.input_model.model_validate(rendered)
        except ValidationError as e:
            problems = [
                (".".join(str(p) for p in err["loc"]) or "(input)", err["msg"])
                for err in e.errors()
            ]
            raise ActionInputError(step.id, action.id, problems) from None
        fake = self.dry_run and not action.supports_dry_run
        return PreparedStep(step, action, params, fake=fake)

    def execute(self, prepared: PreparedStep, logger: Logger | None = None) -> ActionOutput:
        """Run one prepared step (this is the body of the step's Prefect task)."""
        ctx = self.action_context(prepared.step.id, logger)
        if prepared.fake:
            if isinstance(prepared.action, _UnknownAction):
                ctx.logger.warning("dry run: unknown action %r skipped", prepared.step.action)
                return ActionOutput()
            ctx.logger.info("dry run: %s does not support dry run; output faked",
                            prepared.action.id)
            return fake_output(prepared.action.output_model, prepared.action.id)
        if self.dry_run:
            return prepared.action.dry_run(ctx, prepared.params)  # type: ignore[no-any-return]
        return prepared.action.run(ctx, prepared.params)  # type: ignore[no-any-return]

    def rollback(self, prepared: PreparedStep, output: ActionOutput,
                 logger: Logger | None = None) -> None:
        ctx = self.action_context(prepared.step.id, logger)
        prepared.action.rollback(ctx, prepared.params, output)

    # --- the whole run -----------------------------------------------------------------

    def run(
        self,
        execute_step: StepExecutor | None = None,
        rollback_step: RollbackExecutor | None = None,
        listener: Listener | None = None,
    ) -> RunResult:
        """Every step in order; on failure roll back and raise StepFailedError."""
        execute_step = execute_step or (lambda run, p: run.execute(p))
        rollback_step = rollback_step or (lambda run, p, out: run.rollback(p, out))
        notify = listener or (lambda report: None)
        self.check_actions()
        for step in self.template.spec.steps:
            started = time.monotonic()
            try:
                prepared = self.prepare(step)
                if prepared is None:
                    report = StepReport(step.id, step.display_name, step.action, "skipped",
                                        reason="if: condition is false")
                    self.reports.append(report)
                    notify(report)
                    continue
                output = execute_step(self, prepared)
            except Exception as e:
                reason = str(e) if isinstance(e, EnvforgeError) else f"{type(e).__name__}: {e}"
                reason = scrub(reason)  # a fetched secret value never reaches an error message
                report = StepReport(step.id, step.display_name, step.action, "failed",
                                    time.monotonic() - started, reason)
                self.reports.append(report)
                notify(report)
                rolled, failures = self._roll_back(rollback_step, notify)
                raise StepFailedError(step.id, step.action, reason, rolled, failures) from e
            self.outputs[step.id] = output.model_dump(mode="json")
            if not prepared.fake:
                self.completed.append((prepared, output))
            status: StepStatus = "faked" if prepared.fake else (
                "dry-run" if self.dry_run else "completed")
            note: str | None = None
            if isinstance(prepared.action, _UnknownAction):
                status, note = "skipped", f"unknown action {step.action!r} (dry run)"
            report = StepReport(step.id, step.display_name, step.action, status,
                                time.monotonic() - started, note)
            self.reports.append(report)
            notify(report)
        return RunResult(self.template.name, self.run_id, self.dry_run, self.reports,
                         self.render_output())

    def _roll_back(
        self, rollback_step: RollbackExecutor, notify: Listener
    ) -> tuple[list[str], list[str]]:
        rolled: list[str] = []
        failures: list[str] = []
        for prepared, output in reversed(self.completed):
            step = prepared.step
            try:
                rollback_step(self, prepared, output)
            except Exception as e:  # keep undoing the others; report every failure
                log.error("rollback of step %r failed: %s", step.id, e)
                failures.append(f"{step.id}: {e}")
                continue
            rolled.append(step.id)
            for report in self.reports:
                if report.id == step.id:
                    report.status = "rolled-back"
                    notify(report)
        self.completed.clear()
        return rolled, failures

    def render_output(self) -> dict[str, Any]:
        """spec.output rendered; a link or text that fails to render is reported, not fatal."""
        context = self.expression_context()
        output = self.template.spec.output.model_dump(exclude_none=True)
        rendered: dict[str, Any] = {}
        for key, value in output.items():
            items = value if isinstance(value, list) else [value]
            done = []
            for i, item in enumerate(items):
                try:
                    done.append(self.engine.render_value(item, context, f"output.{key}[{i}]"))
                except EnvforgeError as e:
                    log.warning("%s", e)
                    done.append({"title": f"(could not render output.{key}[{i}])",
                                 "error": str(e)})
            rendered[key] = done if isinstance(value, list) else done[0]
        return rendered

    def close(self) -> None:
        """Remove the workspace and drop every secret value this run held in memory."""
        shutil.rmtree(self.workspace, ignore_errors=True)
        from envforge.secrets.environment import forget_run  # lazy: it loads the k8s client

        forget_run(self.run_id)


class _UnknownAction(Action[ActionInput, ActionOutput]):
    """Placeholder for an action id a dry run does not know: reported and skipped."""

    input_model = ActionInput
    output_model = ActionOutput

    def __init__(self, action_id: str) -> None:
        self.id = action_id  # type: ignore[misc]


__all__ = [
    "PreparedStep",
    "RunResult",
    "SecretRef",
    "StepReport",
    "TemplateRun",
    "UnknownActionError",
]
