from typing import Any

import pytest

from envforge.actions.base import Action, ActionInput, ActionOutput, fake_output
from envforge.actions.registry import ActionRegistry, default_registry
from envforge.errors import ActionError, DuplicateActionError, UnknownActionError


class _In(ActionInput):
    pass


class _Out(ActionOutput):
    url: str
    count: int
    ok: bool
    names: list[str]
    note: str = "kept"


class Greet(Action[_In, _Out]):
    id = "test:greet"
    description = "greets"
    input_model = _In
    output_model = _Out


def test_duplicates_are_refused() -> None:
    registry = ActionRegistry([Greet])
    with pytest.raises(DuplicateActionError, match="'test:greet' is already registered"):
        registry.register(Greet)


def test_ids_must_be_namespaced() -> None:
    class Bare(Greet):
        id = "greet"

    with pytest.raises(ActionError, match="must be namespaced"):
        ActionRegistry([Bare])


def test_unknown_ids_list_the_available_ones() -> None:
    registry = ActionRegistry([Greet])
    with pytest.raises(UnknownActionError) as info:
        registry.get("test:gret", step_id="hello")
    assert str(info.value) == (
        "step 'hello': unknown action 'test:gret'; available actions: test:greet"
    )


def test_builtins_are_registered() -> None:
    ids = default_registry().ids()
    assert {"fetch:template", "fetch:plain", "debug:log", "publish:git"} <= set(ids)


def test_fake_outputs_follow_the_output_model() -> None:
    out: Any = fake_output(_Out, "test:greet")
    assert out.url == "dry-run:test:greet.url"
    assert (out.count, out.ok, out.names, out.note) == (0, False, [], "kept")
