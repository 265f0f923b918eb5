"""`envforge actions list|show`: the command the runner's and validate's messages point to."""

from __future__ import annotations

import json

import pytest

from envforge.actions.registry import default_registry
from envforge.cli import main


def test_list_names_every_registered_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["actions", "list"]) == 0
    out = capsys.readouterr().out
    ids = [line.split()[0] for line in out.splitlines() if line and ":" in line.split()[0]]
    assert ids == default_registry().ids()
    assert "fetch:template" in out and "dry-run" in out


def test_list_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["actions", "list", "--output", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {a["id"] for a in listed} == set(default_registry().ids())
    assert next(a for a in listed if a["id"] == "publish:gitops")["supportsDryRun"] is True


def test_show_gives_the_input_schema_and_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["actions", "show", "fetch:template"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fetch:template: ")
    assert "\ninput:\n  url " in out and "required" in out
    assert "example step:\n  steps:\n  - id: " in out and "action: fetch:template" in out


def test_show_as_json_is_the_models_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["actions", "show", "db:seed", "--output", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    action = default_registry().get("db:seed")
    assert shown["schema"]["input"] == action.input_model.model_json_schema(by_alias=True)
    assert shown["examples"] == action.examples and shown["examples"]


def test_an_unknown_action_is_one_line_listing_the_known_ones(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["actions", "show", "fetch:nonexistent"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown action 'fetch:nonexistent'" in err
    assert "fetch:template" in err


def test_the_messages_that_point_here_name_a_real_command() -> None:
    """The runner and `templates validate` send users to `envforge actions list`."""
    from envforge.cli import build_parser

    args = build_parser().parse_args(["actions", "list"])
    assert args.handler.__name__ == "list_actions"
