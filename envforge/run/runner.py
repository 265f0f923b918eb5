"""Running a template: render each step's input, validate it, execute it, roll back on failure.

This module knows nothing of Prefect. The flow in ``flows/run_template.py`` hands in executors
that wrap each step (and each rollback) in a Prefect task run; called without them, steps run
inline, which is what the unit tests and `templates validate` use.

Order of work for one step: evaluate ``if`` -> render ``input`` -> validate it against the
action's input model -> run (or dry-run, or fake the output in a dry run) -> record the output
for ``steps.<id>.output``. Steps that do not wait for each other (envforge.run.step_graph) run at
the same time, each in a pool thread; rendering stays on the calling thread. On a failure no
new step starts, running ones finish, and completed steps are rolled back newest first (by
completion).
"""

from __future__ import annotations

import getpass
import logging
import re
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextvars import copy_context
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from envforge.actions.base import (
    Action,
    ActionContext,
    ActionInput,
    ActionOutput,
    fake_output,
    why_missing,
)
from envforge.actions.registry import ActionRegistry, default_registry
from envforge.capabilities import default_capabilities
from envforge.errors import (
    ActionError,
    ActionInputError,
    EnvforgeError,
    SecretInGitError,
    StepFailedError,
    TemplateError,
    UnknownActionError,
)
from envforge.run.run_secrets import (
    RunSecrets,
    SecretRef,
    check_secret_values,
    files_holding_secrets,
    refuse_secret_values,
    secret_forms,
)
from envforge.run.step_graph import resources_of, step_dependencies
from envforge.run.workspaces import new_workspace
from envforge.secrets.redaction import default_redactor, install, scrub
from envforge.secrets.references import refuse_references_in_git_fields
from envforge.services import Services
from envforge.settings import load_settings
from envforge.templating.expressions import ExpressionEngine
from envforge.templating.model import Template, TemplateStep
from envforge.templating.parameters import validate_parameters

StepStatus = Literal["completed", "skipped", "dry-run", "faked", "failed", "rolled-back"]
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
log = logging.getLogger("envforge.run.runner")


def caller_identity(name: str | None = None) -> dict[str, Any]:
    """``${{ user }}`` as Backstage has it: ``user.ref`` and ``user.entity`` of the caller,
    named by the CLI's --user, else ENVFORGE_USER, else the operating-system user."""
    if not name:
        try:
            name = load_settings().runner.user or getpass.getuser()
        except (KeyError, OSError):  # no passwd entry in some containers
            name = "envforge"
    kind, _, rest = name.rpartition(":")
    namespace, _, plain = rest.rpartition("/")
    plain = re.sub(r"[^A-Za-z0-9_.-]+", "-", plain).strip("-._") or "envforge"
    namespace = namespace or "default"
    return {
        "ref": f"{(kind or 'user').lower()}:{namespace}/{plain}",
        "entity": {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "User",
            "metadata": {"name": plain, "namespace": namespace},
            "spec": {"profile": {"displayName": plain}, "memberOf": []},
        },
    }


class PlaceholderOutput(dict[str, Any]):
    """Output of an action a dry run does not know: any key reads as a placeholder, so later
    steps and output links that use it still render."""

    def __init__(self, action_id: str) -> None:
        super().__init__()
        self.action_id = action_id

    def __missing__(self, key: str) -> str:
        return f"<{self.action_id} output {key} (dry run)>"


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
    #: the item of ``each:`` this execution is for (``${{ each.key }}``, ``${{ each.value }}``)
    each: dict[str, Any] | None = None


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
    #: values for ``${{ secrets.NAME }}`` (run_secrets: ``--secret``, Secret blocks); never
    #: a parameter, masked in logs, errors and the result; default: the services' run_secrets
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    registry: ActionRegistry = field(default_factory=default_registry)
    validate: bool = True
    #: the caller (``${{ user.ref }}``, ``${{ user.entity }}``); default: caller_identity()
    #: of the settings' user (the services', else the process's)
    user: Mapping[str, Any] = field(default_factory=dict)
    #: a dry run that only renders: every action but fetch:* is faked (validate, check)
    render_only: bool = False
    #: steps that may run at the same time; 0: the settings' (ENVFORGE_MAX_PARALLEL_STEPS,
    #: default 4); 1 runs them one by one in template order
    max_parallel: int = 0
    #: the composition root's services, handed to every step (``ActionContext.services``):
    #: settings, connections, capabilities, manifest checks, step listeners
    services: Services | None = None
    workspace: Path = field(init=False)

    def __post_init__(self) -> None:
        settings = self.services.settings if self.services else load_settings()
        if self.max_parallel <= 0:
            self.max_parallel = settings.runner.max_parallel_steps
        if not self.user:
            self.user = caller_identity(settings.runner.user)
        if self.validate:
            self.parameters = validate_parameters(self.template, self.parameters)
        if not self.secrets and self.services is not None:
            self.secrets = dict(self.services.run_secrets)
        if self.secrets:
            check_secret_values(self.secrets)
            default_redactor().register_all(  # and the forms a filter reshapes it to
                f for v in self.secrets.values() if v for f in secret_forms(v))
            install()  # every log record (Prefect's API handler's too) is masked at birth
        self.engine = ExpressionEngine()
        self.outputs: dict[str, dict[str, Any]] = {}
        self.unknown_actions: list[str] = []
        self.reports: list[StepReport] = []
        self.completed: list[tuple[PreparedStep, ActionOutput]] = []
        self.workspace = new_workspace(self.template.name)  # removes killed runs' ones

    # --- what expressions see ----------------------------------------------------------

    def expression_context(self) -> dict[str, Any]:
        return {
            "parameters": self.parameters,
            "steps": {sid: {"output": out} for sid, out in self.outputs.items()},
            "environment": dict(self.environment),
            "secrets": RunSecrets(self.secrets, self.secret_names),
            "user": dict(self.user),
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
            capabilities=(self.services.capabilities if self.services
                          else default_capabilities()),
            services=self.services,
        )

    # --- one step ----------------------------------------------------------------------

    def check_actions(self) -> None:
        """Before a real run: every action must exist, so nothing starts that cannot finish."""
        if self.dry_run:
            return
        missing = [(s.id, s.action) for s in self.template.spec.steps
                   if s.action not in self.registry]
        if len(missing) == 1 and not why_missing(missing[0][1]):
            self.registry.get(missing[0][1], missing[0][0])
        if missing:
            listed = ", ".join(f"{action} (step {sid!r}){why_missing(action)}"
                               for sid, action in missing)
            raise ActionError(
                f"template {self.template.name!r} uses {len(missing)} action(s) envforge does "
                f"not have: {listed}; 'envforge actions list' shows the available ones, and "
                "a dry run (--dry-run) shows what the rest of the template renders")

    def prepare(self, step: TemplateStep) -> PreparedStep | None:
        """The step ready to execute, or None when its ``if`` is false (the first item of an
        ``each:`` step; :meth:`prepare_all` gives every item)."""
        prepared = self.prepare_all(step)
        return prepared[0] if prepared else None

    def prepare_all(self, step: TemplateStep) -> list[PreparedStep]:
        """One prepared execution per ``each:`` item (one when there is no ``each``); none
        when the step's ``if`` is false."""
        where = f"step {step.id!r}"
        if step.each is None:
            return [p for p in [self._prepare_one(step, None)] if p is not None]
        items = self.engine.render_value(step.each, self.expression_context(),
                                         f"{where} field each")
        if isinstance(items, Mapping):
            pairs = list(items.items())
        elif isinstance(items, list):
            pairs = list(enumerate(items))
        elif items is None:
            pairs = []
        else:
            raise TemplateError(f"template {self.template.name!r} {where} field each: must be "
                                f"a list or a mapping, got {type(items).__name__}")
        # bounded before anything is prepared: one each over 100,000 items made 100,000
        # task runs (ENVFORGE_MAX_EACH_ITEMS, ENVFORGE_MAX_TASK_RUNS)
        budget = (self.services.capabilities if self.services
                  else default_capabilities()).run_budget
        label = f"template {self.template.name!r} {where}"
        budget.check_each(label, len(pairs))
        self.item_runs = getattr(self, "item_runs", 0) + len(pairs)
        budget.check_task_runs(label, self.item_runs)
        found = [self._prepare_one(step, {"key": k, "value": v}) for k, v in pairs]
        return [p for p in found if p is not None]

    def _prepare_one(self, step: TemplateStep, each: dict[str, Any] | None
                     ) -> PreparedStep | None:
        context = self.expression_context()
        if each is not None:
            context["each"] = each
        where = f"step {step.id!r}" + (f" item {each['key']!r}" if each is not None else "")
        if step.if_ is not None and not self.engine.evaluate_condition(
            step.if_, context, f"{where} field if"
        ):
            return None
        if step.action not in self.registry and self.dry_run:
            return PreparedStep(step, _UnknownAction(step.action), ActionInput(), fake=True,
                                each=each)
        action = self.registry.get(step.action, step.id)
        rendered = self.engine.render_value(step.input, context, f"{where} field input")
        if action.git_bound:
            # ``token`` (fetch:*, publish:*) authenticates the request and never reaches Git
            committed = {k: v for k, v in rendered.items() if k != "token"}
            refuse_references_in_git_fields(committed, f"{where} field input")
            # fetch:* ``values`` render into the workspace, which is scanned before anything
            # is published (the rest of its input, its url above all, leaves the machine:
            # a secret in it would be sent to whatever host the URL names); publish:github's
            # ``secrets`` (the new repository's Actions secrets) go to its API, not Git
            kept_out = "values" if action.id.startswith("fetch:") else "secrets"
            refuse_secret_values({k: v for k, v in committed.items() if k != kept_out},
                                 self.secrets, f"{where} field input")
        try:
            params = action.input_model.model_validate(rendered)
        except ValidationError as e:
            problems = [
                (".".join(str(p) for p in err["loc"]) or "(input)", err["msg"])
                for err in e.errors()
            ]
            raise ActionInputError(step.id, action.id, problems) from None
        fake = self.dry_run and (not action.supports_dry_run or (
            self.render_only and not action.id.startswith("fetch:")))
        return PreparedStep(step, action, params, fake=fake, each=each)

    def execute(self, prepared: PreparedStep, logger: Logger | None = None) -> ActionOutput:
        """Run one prepared step (this is the body of the step's Prefect task). An error that
        would carry a secret value out (into the task run's state in Prefect) is masked."""
        try:
            return self._execute(prepared, logger)
        except Exception as e:
            text = str(e)
            if scrub(text) == text:
                raise
            raise ActionError(f"step {prepared.step.id!r} ({prepared.step.action}): "
                              f"{type(e).__name__}: {scrub(text)}") from None

    def _execute(self, prepared: PreparedStep, logger: Logger | None) -> ActionOutput:
        ctx = self.action_context(prepared.step.id, logger)
        if prepared.step.action.startswith("publish:"):
            self.refuse_secrets_in_workspace(prepared.step.id)
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

    def refuse_secrets_in_workspace(self, step_id: str) -> None:
        """Before a publish (faked in a dry run too, so a dry run predicts the refusal): no
        workspace file may hold a value of this run's secrets, since it would go to Git."""
        hits = files_holding_secrets(self.workspace, self.secrets)
        if hits:
            listed = ", ".join(f"{f} (secrets.{n})" for f, n in hits[:5])
            raise SecretInGitError(
                f"step {step_id!r}: refusing to publish: {len(hits)} workspace file(s) hold a "
                f"secret's value: {listed}; keep secrets out of fetch:template values (use "
                "them in 'token' inputs), or deliver them with vault:secrets")

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
        """Every step, independent ones at the same time (envforge.run.step_graph says which wait
        for which); on failure start nothing new, let running steps finish, roll back what
        completed, newest first, and raise StepFailedError."""
        execute_step = execute_step or (lambda run, p: run.execute(p))
        rollback_step = rollback_step or (lambda run, p, out: run.rollback(p, out))
        notify = listener or (self.services.notify_step if self.services
                              else (lambda report: None))
        self.check_actions()
        steps = self.template.spec.steps
        waits_for = step_dependencies(steps, {
            s.id: resources_of(s.action, self.registry.get(s.action, s.id))
            if s.action in self.registry else None for s in steps})
        order = {s.id: i for i, s in enumerate(steps)}
        finished: set[str] = set()
        pending = list(steps)
        running: dict[Future[_Outcome], TemplateStep] = {}
        failure: tuple[TemplateStep, BaseException] | None = None
        with ThreadPoolExecutor(self.max_parallel, thread_name_prefix="envforge-step") as pool:
            while pending or running:
                progress = True
                while progress and failure is None and len(running) < self.max_parallel:
                    progress = False
                    ready = next((s for s in pending if waits_for[s.id] <= finished), None)
                    if ready is None:
                        break
                    pending.remove(ready)
                    progress = True
                    started = time.monotonic()
                    try:
                        all_prepared = self.prepare_all(ready)  # renders stay on this thread
                    except Exception as e:
                        failure = (ready, e)
                        self._report_failure(ready, e, time.monotonic() - started, notify)
                        break
                    if not all_prepared:
                        why = "if: condition is false" if ready.each is None else "each: no items"
                        self._report(StepReport(ready.id, ready.display_name, ready.action,
                                                "skipped", reason=why), notify)
                        finished.add(ready.id)
                        continue
                    # the step's task runs in a pool thread with this thread's context (the
                    # flow run's, for Prefect), as Prefect's own thread pool task runner does
                    job = partial(_execute_items, self, execute_step, all_prepared, started)
                    running[pool.submit(copy_context().run, job)] = ready
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: f.result().ended):  # completion order
                    step = running.pop(future)
                    outcome = future.result()
                    self.completed.extend(
                        (p, out) for p, out in zip(outcome.prepared, outcome.outputs, strict=False)
                        if not p.fake)
                    if outcome.error is not None:
                        self._report_failure(step, outcome.error, outcome.seconds, notify)
                        failure = failure or (step, outcome.error)
                        continue
                    self._finish(step, outcome, notify)
                    finished.add(step.id)
        self.reports.sort(key=lambda r: order[r.id])  # template order, for people
        if failure is not None:
            step, error = failure
            reason = next(r.reason for r in self.reports if r.id == step.id) or ""
            rolled, failures = self._roll_back(rollback_step, notify)
            raise StepFailedError(step.id, step.action, reason, rolled, failures) from error
        return RunResult(self.template.name, self.run_id, self.dry_run, self.reports,
                         _scrubbed(self.render_output()))

    def _report(self, report: StepReport, notify: Listener) -> None:
        self.reports.append(report)
        notify(report)

    def _report_failure(self, step: TemplateStep, error: BaseException, seconds: float,
                        notify: Listener) -> None:
        reason = str(error) if isinstance(error, EnvforgeError) else (
            f"{type(error).__name__}: {error}")
        reason = scrub(reason)  # a fetched secret value never reaches an error message
        reason = reason.removeprefix(f"step {step.id!r} ({step.action}): ")
        self._report(StepReport(step.id, step.display_name, step.action, "failed", seconds,
                                reason), notify)

    def _finish(self, step: TemplateStep, outcome: _Outcome, notify: Listener) -> None:
        self.outputs[step.id] = self._step_output(step, outcome.prepared, outcome.outputs)
        prepared = outcome.prepared[-1]
        status: StepStatus = "faked" if prepared.fake else (
            "dry-run" if self.dry_run else "completed")
        note: str | None = None
        if isinstance(prepared.action, _UnknownAction):
            status, note = "skipped", (f"unknown action {step.action!r}: not run"
                                       f"{why_missing(step.action)}; later steps see "
                                       "placeholder outputs (dry run)")
            if step.action not in self.unknown_actions:
                self.unknown_actions.append(step.action)
        self._report(StepReport(step.id, step.display_name, step.action, status,
                                outcome.seconds, note), notify)

    def _step_output(self, step: TemplateStep, prepared: list[PreparedStep],
                     outputs: list[ActionOutput]) -> dict[str, Any]:
        """What ``steps.<id>.output`` reads; for ``each:`` steps every key holds a list with
        one value per item, as in Backstage."""
        if isinstance(prepared[0].action, _UnknownAction):
            return PlaceholderOutput(step.action)
        dumped = [o.model_dump(mode="json") for o in outputs]
        if step.each is None:
            return dumped[0]
        merged: dict[str, Any] = {}
        for item in dumped:
            for key, value in item.items():
                merged.setdefault(key, []).append(value)
        return merged

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
        output = self.template.spec.output.model_dump(exclude_none=True, by_alias=True)
        rendered: dict[str, Any] = {}
        for key, value in output.items():
            items = value if isinstance(value, list) else [value]
            done = []
            for i, item in enumerate(items):
                try:
                    if isinstance(item, dict) and "if" in item:
                        condition = item.pop("if")
                        if not self.engine.evaluate_condition(condition, context,
                                                              f"output.{key}[{i}].if"):
                            continue
                    done.append(self.engine.render_value(item, context, f"output.{key}[{i}]"))
                except EnvforgeError as e:
                    log.warning("%s", e)
                    done.append({"title": f"(could not render output.{key}[{i}])",
                                 "error": str(e)})
            if isinstance(value, list):
                rendered[key] = done
            elif done:
                rendered[key] = done[0]
        return rendered

    def close(self) -> None:
        """Remove the workspace and drop every secret value this run held in memory."""
        shutil.rmtree(self.workspace, ignore_errors=True)
        shutil.rmtree(self.workspace.with_name(self.workspace.name + ".undo"), ignore_errors=True)
        from envforge.secrets.environment import forget_run  # lazy: it loads the k8s client

        forget_run(self.run_id)
        self.secrets = {}  # the redactor keeps masking them for the rest of the process


def _scrubbed(value: Any) -> Any:
    """``value`` (a run's rendered output) with every secret value masked: the result goes
    to Prefect and to the caller's screen."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


@dataclass
class _Outcome:
    """What one step's items did in their pool thread: outputs of the items that completed,
    and the error that stopped the next one, if any."""

    prepared: list[PreparedStep]
    outputs: list[ActionOutput]
    error: BaseException | None
    seconds: float
    #: time.monotonic() when the last item ended: rollback goes by completion order
    ended: float


def _execute_items(run: TemplateRun, execute_step: StepExecutor,
                   prepared: list[PreparedStep], started: float) -> _Outcome:
    """Run a step's items (one per ``each:`` item) one after another."""
    outputs: list[ActionOutput] = []
    try:
        for item in prepared:
            outputs.append(execute_step(run, item))
    except Exception as e:
        ended = time.monotonic()
        return _Outcome(prepared, outputs, e, ended - started, ended)
    ended = time.monotonic()
    return _Outcome(prepared, outputs, None, ended - started, ended)


class _UnknownAction(Action[ActionInput, ActionOutput]):
    """Placeholder for an action id a dry run does not know: reported and skipped."""

    input_model = ActionInput
    output_model = ActionOutput

    def __init__(self, action_id: str) -> None:
        self.id = action_id  # type: ignore[misc]


__all__ = [
    "PlaceholderOutput",
    "PreparedStep",
    "RunResult",
    "SecretRef",
    "StepReport",
    "TemplateRun",
    "UnknownActionError",
]
