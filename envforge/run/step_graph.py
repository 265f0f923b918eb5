"""Which steps of a template must wait for which: the graph the runner runs steps in parallel by.

A step waits for an earlier step when
- one of its expressions (``input``, ``if``, ``each``) reads ``steps.<id>`` or
  ``steps['<id>']`` (found in the parsed expression, not by matching text; an expression that
  reads ``steps`` in a way that names no step, such as ``steps[name]``, waits for every earlier
  step);
- an input names it the way ``kubernetes:secret``'s ``fromStep`` names its ``vault:secrets``
  step (:data:`STEP_NAMING_INPUTS`);
- both touch a shared resource and one of them writes it: the run's workspace (``fetch:*``,
  ``fs:*``, ``catalog:write`` and ``vault:secrets`` write it, ``publish:*`` reads it) or the
  environment's database (``db:*``);
- it is a ``publish:*`` step: publishing makes the environment live, so it comes after every
  step before it; and a step listed after a ``publish:*`` step waits for it (Backstage runs
  steps one after another, so what a template lists after publishing expects it done, and a
  failure there must find the publish to roll back);
- the template says so: ``dependsOn: [<earlier step id>, ...]`` on the step;
- either of them is an action this table does not know: such a step runs alone, in template
  order, since nothing says what it touches.

Every edge points from an earlier step to a later one (template order), so the graph has no
cycles, and running steps in template order is always one valid schedule.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from jinja2 import nodes

from envforge.templating.expressions import make_environment
from envforge.templating.model import TemplateStep
from envforge.templating.sandbox import nunjucks_to_jinja

Mode = Literal["read", "write"]
WORKSPACE = "workspace"
DATABASE = "database"

#: What each known action touches besides what its expressions read. Keys are action ids or
#: ``prefix:*``; an action missing here (and without a ``resources`` attribute) runs alone.
RESOURCES: dict[str, dict[str, Mode]] = {
    "fetch:*": {WORKSPACE: "write"},
    "fs:*": {WORKSPACE: "write"},
    "catalog:write": {WORKSPACE: "write"},
    "vault:secrets": {WORKSPACE: "write"},
    "publish:*": {WORKSPACE: "read"},
    "debug:log": {WORKSPACE: "read"},
    "db:*": {DATABASE: "write"},
    "image:*": {},
    "kubernetes:secret": {},
    "argocd:wait": {},
    "catalog:register": {},
    "debug:wait": {},
}
#: Actions that come after every step before them.
AFTER_EVERYTHING_BEFORE = ("publish:",)
#: Inputs that name another step of the run, with their default.
STEP_NAMING_INPUTS: dict[str, dict[str, str]] = {"kubernetes:secret": {"fromStep": "secrets"}}

_ANY_STEP = "*"


def resources_of(action_id: str, action: Any = None) -> dict[str, Mode] | None:
    """What ``action_id`` touches; None when unknown (the step then runs alone). An action
    class may declare its own with a ``resources`` attribute (same shape as the table)."""
    declared = getattr(action, "resources", None)
    if isinstance(declared, Mapping):
        return dict(declared)
    if action_id in RESOURCES:
        return RESOURCES[action_id]
    namespace = action_id.split(":", 1)[0]
    return RESOURCES.get(f"{namespace}:*")


def referenced_steps(value: Any) -> set[str]:
    """Step ids the expressions in ``value`` read through ``steps``; ``"*"`` among them when an
    expression reads ``steps`` without naming a step."""
    found: set[str] = set()
    for text in _strings(value):
        if "${{" not in text and "{%" not in text:
            continue
        try:
            tree = _ENV.parse(nunjucks_to_jinja(text))
        except Exception:  # a syntax error is reported when the step renders; be safe here
            found.add(_ANY_STEP)
            continue
        _collect(tree, None, found)
    return found


def step_dependencies(steps: Sequence[TemplateStep],
                      resources: Mapping[str, dict[str, Mode] | None] | None = None
                      ) -> dict[str, set[str]]:
    """For every step, the ids of the earlier steps it waits for. ``resources`` overrides
    :func:`resources_of` per step id (the runner passes what the registry's actions say)."""
    ids = [s.id for s in steps]
    overrides = resources or {}
    touched = {s.id: overrides[s.id] if s.id in overrides else resources_of(s.action)
               for s in steps}
    deps: dict[str, set[str]] = {}
    for index, step in enumerate(steps):
        earlier = ids[:index]
        wanted = referenced_steps([step.input, step.if_, step.each])
        wanted |= {name for field, default in STEP_NAMING_INPUTS.get(step.action, {}).items()
                   if isinstance(name := step.input.get(field, default), str)}
        wanted |= set(step.depends_on)
        mine = touched[step.id]
        if (_ANY_STEP in wanted or mine is None
                or step.action.startswith(AFTER_EVERYTHING_BEFORE)):
            deps[step.id] = set(earlier)
            continue
        waits = {sid for sid in wanted if sid in earlier}
        for other_step in steps[:index]:
            other = other_step.id
            theirs = touched[other]
            if (theirs is None or _conflict(mine, theirs)
                    or other_step.action.startswith(AFTER_EVERYTHING_BEFORE)):
                waits.add(other)
        deps[step.id] = waits
    return deps


def _conflict(a: Mapping[str, Mode], b: Mapping[str, Mode]) -> bool:
    return any(name in b and "write" in (mode, b[name]) for name, mode in a.items())


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _collect(node: nodes.Node, parent: nodes.Node | None, found: set[str]) -> None:
    if isinstance(node, nodes.Name) and node.name == "steps" and node.ctx == "load":
        if isinstance(parent, nodes.Getattr) and parent.node is node:
            found.add(parent.attr)
        elif (isinstance(parent, nodes.Getitem) and parent.node is node
              and isinstance(parent.arg, nodes.Const) and isinstance(parent.arg.value, str)):
            found.add(parent.arg.value)
        else:
            found.add(_ANY_STEP)
    for child in node.iter_child_nodes():
        _collect(child, node, found)


_ENV = make_environment(strict=False)
