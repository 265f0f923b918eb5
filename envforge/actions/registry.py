"""The action registry: one id, one action; refuses duplicates, names alternatives on a miss."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any

from envforge.actions.base import ACTION_ID, Action
from envforge.errors import ActionError, DuplicateActionError, UnknownActionError

#: Modules that define built-in actions; each exposes ``ACTIONS: list[type[Action]]``.
BUILTIN_ACTION_MODULES: tuple[str, ...] = (
    "envforge.actions.fetch",
    "envforge.actions.fetch_cookiecutter",
    "envforge.actions.debug",
    "envforge.actions.filesystem",
    "envforge.actions.catalog",
    "envforge.actions.publish_providers",
    "envforge.actions.publish_azure",
    "envforge.actions.github_webhook",
    "envforge.actions.publish_git",
    "envforge.images.actions",
    "envforge.secrets.actions",
    "envforge.gitops.actions",
    "envforge.db.actions",
    "envforge.db.container_action",
    "envforge.db.roles_action",
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


#: The packaging entry-point group of action plugins (docs/backstage.md, "Adding an action"):
#: each entry names a module exposing ``ACTIONS``, a list of Action classes, or one class.
PLUGIN_ENTRY_POINT_GROUP = "envforge.actions"


def plugin_actions() -> list[type[Action[Any, Any]]]:
    """The actions of every installed plugin (``envforge.actions`` entry points)."""
    found: list[type[Action[Any, Any]]] = []
    for ep in entry_points(group=PLUGIN_ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception as e:  # a broken plugin is named, not a stack trace
            raise ActionError(f"action plugin {ep.name!r} ({ep.value}) failed to load: "
                              f"{type(e).__name__}: {e}") from None
        if isinstance(loaded, type) and issubclass(loaded, Action):
            found.append(loaded)
        elif isinstance(loaded, list | tuple):
            found += list(loaded)
        elif hasattr(loaded, "ACTIONS"):
            found += list(loaded.ACTIONS)
        else:
            raise ActionError(f"action plugin {ep.name!r} ({ep.value}) is not an Action class, "
                              "a list of them, or a module with ACTIONS")
    return found


def default_registry() -> ActionRegistry:
    """Every built-in action (BUILTIN_ACTION_MODULES) and every plugin's."""
    registry = ActionRegistry()
    for module_name in BUILTIN_ACTION_MODULES:
        module = importlib.import_module(module_name)
        for action_cls in module.ACTIONS:
            registry.register(action_cls)
    for action_cls in plugin_actions():
        registry.register(action_cls)
    return registry
