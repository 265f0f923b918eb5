"""Parameter values nested 5000 deep, from the command line and from the API: refused in one
line before anything runs, never a RecursionError and its 3000-line traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.cli import main
from envforge.environments.lifecycle import EnvironmentRequest, plan_environment
from envforge.errors import BudgetExceededError
from envforge.templating.loader import TemplateCatalog
from tests.helpers import write_template
from tests.services_fixtures import make_services

TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: deep}
spec:
  owner: group:platform
  type: service
  parameters:
    properties:
      name: {type: string}
      x: {type: array}
  steps:
    - id: log
      action: debug:log
      input: {message: hi}
"""


def _deep(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture
def template(tmp_path: Path) -> Path:
    return write_template(tmp_path / "deep", TEMPLATE)


def test_a_5000_deep_set_value_is_one_line(template: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    deep = "[" * 5000 + "]" * 5000
    code = main(["run", str(template), "--dry-run", "--keep-files", str(tmp_path / "kept"),
                 "--set", f"x={deep}"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == ("error: --set x=...: the value is nested deeper than 100 levels; "
                           "give a flatter value")
    assert not (tmp_path / "kept").exists()


def test_a_shallow_set_value_still_works(template: Path, tmp_path: Path) -> None:
    assert main(["run", str(template), "--dry-run", "--keep-files", str(tmp_path / "kept"),
                 "--set", "x=[[1], [2]]"]) == 0


def test_a_5000_deep_parameter_through_the_api_is_refused_before_validation(
        template: Path) -> None:
    """create-environment's parameters come as JSON (API, form, webhook): the environment
    plan refuses the depth before the schema validation would recurse."""
    services = make_services()
    request = EnvironmentRequest(name="deep-1", template=str(template),
                                 parameters={"x": _deep(5000)})
    with pytest.raises(BudgetExceededError) as info:
        plan_environment(request, TemplateCatalog([template.parent]), services)
    assert str(info.value) == ("environment 'deep-1' parameters: nested deeper than 100 "
                               "levels; give a flatter value")


def test_a_5000_deep_parameter_of_a_template_run_is_refused_before_validation(
        template: Path) -> None:
    """run-template's parameters come as JSON from the API or a form, not through the
    environment plan: validating them refuses the depth in one line instead of recursing."""
    from envforge.templating.loader import load_template
    from envforge.templating.parameters import validate_parameters

    with pytest.raises(BudgetExceededError) as info:
        validate_parameters(load_template(template), {"name": "a", "x": _deep(5000)})
    assert str(info.value) == ("template 'deep' parameters: nested deeper than 100 levels; "
                               "give a flatter value")
