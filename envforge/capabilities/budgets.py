"""Run budgets: how much one template run may ask for, whatever its template says.

``each:`` items per step, task runs per flow, the length of one parameter string, and
archive entries; every limit has a sane default and a setting, and going over is a one-line
:class:`~envforge.errors.BudgetExceededError` naming the step or the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from envforge.errors import BudgetExceededError, ConfigurationError


@dataclass(frozen=True)
class CloneBudget:
    """How much one git clone of a repository a template names may transfer and check out,
    enforced while git runs (envforge.capabilities.clone); ``settings`` name the variables
    that raise each limit, for the error message."""

    max_bytes: int = 100 * 1024 * 1024
    max_entries: int = 20_000
    seconds: float = 120.0
    settings: tuple[str, str, str] = ("ENVFORGE_CLONE_MAX_BYTES", "ENVFORGE_CLONE_MAX_ENTRIES",
                                      "ENVFORGE_CLONE_TIMEOUT_S")


@dataclass(frozen=True)
class RunBudget:
    max_each_items: int = 1_000
    max_task_runs: int = 2_000
    max_string_length: int = 10_000
    #: clones of repositories a template names (publish:*:pull-request's target)
    clone: CloneBudget = field(default_factory=CloneBudget)

    def check_each(self, where: str, count: int) -> None:
        if count > self.max_each_items:
            raise BudgetExceededError(
                f"{where} field each: {count:,} items, more than the {self.max_each_items:,} "
                "allowed per step (ENVFORGE_MAX_EACH_ITEMS); split the work or raise it")

    def check_task_runs(self, where: str, count: int) -> None:
        if count > self.max_task_runs:
            raise BudgetExceededError(
                f"{where}: {count:,} step runs, more than the {self.max_task_runs:,} allowed "
                "per run (ENVFORGE_MAX_TASK_RUNS)")


def int_setting(environ: Mapping[str, str], name: str, default: int) -> int:
    """A positive integer setting from ``environ`` (default when unset or empty)."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigurationError(f"{name}={raw!r} must be greater than 0")
    return value



#: Deepest nesting a parameter value may have (the YAML loader's bound, for values that came
#: as JSON through the API, a form or a webhook): deeper ones made validation recurse until
#: Python's RecursionError.
MAX_VALUE_DEPTH = 100


def check_value_depth(where: str, value: object, max_depth: int = MAX_VALUE_DEPTH) -> None:
    """Refuse ``value`` if lists/mappings nest deeper than ``max_depth`` (walked without
    recursion, so the check itself cannot overflow)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, (list, tuple)):
            children = list(item)
        else:
            continue
        if depth >= max_depth:
            raise BudgetExceededError(f"{where}: nested deeper than {max_depth} levels; give a "
                                      "flatter value")
        stack.extend((child, depth + 1) for child in children)
