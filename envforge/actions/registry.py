"""The action registry: one id, one action; refuses duplicates, names alternatives on a miss."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from typing import Any

from envforge.actions.base import ACTION_ID, Action
from envforge.errors import ActionError, DuplicateActionError, UnknownActionError

#: Modules that define built-in actions; each exposes ``ACTIONS: list[type[Action]]``.
BUILTIN_ACTION_MODULES: tuple[str, ...] = (
    "envforge.actions.fetch",
    "envforge.actions.debug",
    "envforge.actions.filesystem",
    "envforge.actions.catalog",
    "envforge.actions.publish_providers",
    "envforge.actions.publish_git",
    "envforge.images.actions",
    "envforge.secrets.actions",
    "envforge.gitops.actions",
    "envforge.db.actions",
    "envforge.cluster.actions",
)


class ActionRegistry:
    def __init__(self, actions: Iterable[type[Action[Any, Any]]] = ()) -> None:
        self._actions: dict[str, Action[Any, Any]] = {}
        for action in actions:
            self.register(action)

    def register(self, action_cls: type[Action[Any, Any]]) -> None:
        action_id = getattr(action_cls, "id", None)
        if not isinstance(action_id, str) or not ACTION_ID.match(action_id):
            raise ActionError(
                f"{action_cls.__name__}: action id {action_id!r} must be namespaced, "
                "like 'fetch:template'"
            )
        if action_id in self._actions:
            raise DuplicateActionError(action_id)
        self._actions[action_id] = action_cls()

    def get(self, action_id: str, step_id: str | None = None) -> Action[Any, Any]:
        try:
            return self._actions[action_id]
        except KeyError:
            raise UnknownActionError(action_id, list(self._actions), step_id) from None

    def __contains__(self, action_id: object) -> bool:
        return action_id in self._actions

    def __iter__(self) -> Iterator[Action[Any, Any]]:
        return iter(sorted(self._actions.values(), key=lambda a: a.id))

    def ids(self) -> list[str]:
        return sorted(self._actions)


def default_registry() -> ActionRegistry:
    """Every built-in action, from the modules listed in BUILTIN_ACTION_MODULES."""
    registry = ActionRegistry()
    for module_name in BUILTIN_ACTION_MODULES:
        module = importlib.import_module(module_name)
        for action_cls in module.ACTIONS:
            registry.register(action_cls)
    return registry
