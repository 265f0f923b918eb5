"""What an action is: a namespaced, typed unit of work a template step calls.

An action declares its id (``namespace:name``), an input and an output pydantic model, whether it
can run in a dry run, how many times Prefect may retry it, and a rollback that undoes what a
*completed* run of it did. An action that fails must clean up after itself before raising: the
runner rolls back completed steps only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict

from envforge.capabilities import Capabilities, WorkspaceFiles, default_capabilities
from envforge.capabilities.ledger import RunLedger
from envforge.services import Services

ACTION_ID = re.compile(r"^[a-z][a-z0-9-]*(:[a-z][a-zA-Z0-9-]*)+$")


class ActionInput(BaseModel):
    """Base for input models: unknown keys are an error so typos surface in `validate`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ActionOutput(BaseModel):
    """Base for output models; fields are what later steps read as steps.<id>.output.*"""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


InputT = TypeVar("InputT", bound=ActionInput)
OutputT = TypeVar("OutputT", bound=ActionOutput)


@dataclass
class ActionContext:
    """What a running step sees of its run, and what it may use: ``capabilities`` (egress,
    workspace files, caches, providers, budgets), built by the caller; without one, the
    process's configuration, deny-by-default. Never holds secret values in its repr."""

    run_id: str
    step_id: str
    template_name: str
    template_dir: Path
    workspace: Path
    dry_run: bool = False
    environment: Mapping[str, Any] = field(default_factory=dict)
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.getLogger("envforge.actions")
    )
    capabilities: Capabilities = field(default_factory=default_capabilities, repr=False)
    #: the composition root's services (settings, connections, checks); None outside a run
    #: the flows or the CLI started, and then a step that needs connections is refused
    services: Services | None = field(default=None, repr=False)
    _files: WorkspaceFiles | None = field(default=None, init=False, repr=False)

    @property
    def files(self) -> WorkspaceFiles:
        """The step's workspace file API (one per step, so its budget counts the step)."""
        if self._files is None:
            self._files = self.capabilities.files(self.workspace)
        return self._files

    @property
    def ledger(self) -> RunLedger:
        """Where a step records what it is about to make outside Git (a pushed image, a
        provider repository) before it makes it, so a killed create can be cleaned up; records
        nothing unless this run is an environment's recorded create."""
        home = self.services.settings.paths.home if self.services is not None else None
        return RunLedger.for_run(home, str(self.environment.get("name") or ""), self.run_id)


#: Stock Backstage actions envforge does not have, and why: said wherever one is missing
#: (a dry run's note, validate, a real run's refusal).
NOT_BUILT: dict[str, str] = {
    "fetch:rails": "not built: it runs the Rails generator ('rails new'), which these machines "
                   "cannot install (Debian's rails has unmet dependencies here, RubyGems is not "
                   "reachable); docs/backstage.md",
}


def why_missing(action_id: str) -> str:
    """`` (why)`` for a stock Backstage action envforge does not build, else ``""``."""
    reason = NOT_BUILT.get(action_id)
    return f" ({action_id} is {reason})" if reason else ""


class Action(Generic[InputT, OutputT]):
    """Subclass, set the class attributes, implement :meth:`run` (and :meth:`rollback`)."""

    id: ClassVar[str]
    description: ClassVar[str]
    input_model: ClassVar[type[ActionInput]]
    output_model: ClassVar[type[ActionOutput]]
    supports_dry_run: ClassVar[bool] = False
    #: Prefect retries for this step; only errors marked TemporaryError are retried.
    retries: ClassVar[int] = 0
    retry_delay_seconds: ClassVar[float] = 2.0
    #: True for actions whose input ends up in Git (fetch:*, publish:*): a secret reference in
    #: their input is refused before the step runs, so no reference is resolved into Git.
    git_bound: ClassVar[bool] = False
    #: Example step definitions (as in template.yaml) shown by `envforge actions show`.
    examples: ClassVar[list[dict[str, Any]]] = []

    def run(self, ctx: ActionContext, params: InputT) -> OutputT:
        raise NotImplementedError

    def dry_run(self, ctx: ActionContext, params: InputT) -> OutputT:
        """Only called when supports_dry_run; must have no effect outside ctx.workspace."""
        return self.run(ctx, params)

    def rollback(self, ctx: ActionContext, params: InputT, output: OutputT) -> None:
        """Undo what a completed run did. Default: nothing to undo."""

    def check(self, params: InputT, template_dir: Path) -> list[str]:
        """Static problems found without running (used by `templates validate`)."""
        return []


def fake_output(model: type[ActionOutput], action_id: str) -> ActionOutput:
    """An output for a step skipped in a dry run: defaults where declared, typed stand-ins
    elsewhere, so later expressions that read the output still render."""
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if not info.is_required():
            continue
        values[name] = _stand_in(info.annotation, f"dry-run:{action_id}.{name}")
    return model.model_validate(values)


def _stand_in(annotation: Any, label: str) -> Any:
    origin = get_origin(annotation)
    if origin is not None and type(None) in get_args(annotation):
        return None
    target = origin or annotation
    if isinstance(target, type):
        if issubclass(target, bool):
            return False
        if issubclass(target, int | float):
            return 0
        if issubclass(target, list | tuple | set):
            return []
        if issubclass(target, dict):
            return {}
        if issubclass(target, BaseModel):
            return {
                n: _stand_in(f.annotation, f"{label}.{n}")
                for n, f in target.model_fields.items()
                if f.is_required()
            }
    return label
