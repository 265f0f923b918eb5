"""A vendor action comes in through the ``envforge.actions`` entry point; until it is installed
a dry run names exactly the actions that are missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from envforge.actions import registry as registry_module
from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.cli import main
from envforge.errors import ActionError
from tests.unit.backstage.test_backstage_format import make


class _AcmeInput(ActionInput):
    name: str = Field(description="what to greet")


class _AcmeOutput(ActionOutput):
    greeting: str


class AcmeGreet(Action[_AcmeInput, _AcmeOutput]):
    id = "acme:greet"
    description = "A vendor's action, for the plugin test."
    input_model = _AcmeInput
    output_model = _AcmeOutput
    supports_dry_run = True
    examples = [{"id": "greet", "action": "acme:greet", "input": {"name": "x"}}]

    def run(self, ctx: ActionContext, params: _AcmeInput) -> _AcmeOutput:
        return _AcmeOutput(greeting=f"hello {params.name}")


class _EntryPoint:
    def __init__(self, name: str, value: Any) -> None:
        self.name, self.value, self._value = name, f"tests:{name}", value

    def load(self) -> Any:
        if isinstance(self._value, Exception):
            raise self._value
        return self._value


def _plugins(monkeypatch: pytest.MonkeyPatch, *eps: _EntryPoint) -> None:
    monkeypatch.setattr(registry_module, "entry_points",
                        lambda group: list(eps) if group == "envforge.actions" else [])


def test_a_plugin_action_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch, _EntryPoint("acme", [AcmeGreet]))
    assert "acme:greet" in registry_module.default_registry()


def test_a_broken_plugin_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch, _EntryPoint("broken", ImportError("no module acme")))
    with pytest.raises(ActionError, match=r"action plugin 'broken'.*no module acme"):
        registry_module.default_registry()


def test_a_dry_run_names_the_missing_actions(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    make(tmp_path, """\
      steps:
        - {id: greet, action: acme:greet, input: {name: x}}
        - {id: hook, action: acme:webhook, input: {}}
        - {id: log, action: debug:log, input: {message: '${{ steps.greet.output.greeting }}'}}
    """, name="vendor")
    out = tmp_path / "kept"
    assert main(["run", str(tmp_path / "vendor"), "--dry-run", "--keep-files", str(out)]) == 0
    printed = capsys.readouterr().out
    assert ("2 step(s) use actions envforge does not have and were skipped with placeholder "
            "outputs: acme:greet (step 'greet'), acme:webhook (step 'hook')") in printed
