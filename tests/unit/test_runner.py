"""The runner without Prefect: order, outputs, if, dry run, failure and rollback."""

from pathlib import Path
from typing import Any, ClassVar

import pytest

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.actions.registry import ActionRegistry
from envforge.errors import (
    ActionInputError,
    ExpressionError,
    ParameterError,
    StepFailedError,
    UnknownActionError,
)
from envforge.run.runner import TemplateRun
from envforge.templating.loader import load_template
from envforge.templating.model import Template
from tests.helpers import write_template

JOURNAL: list[str] = []


class MakeIn(ActionInput):
    name: str
    fail: bool = False


class MakeOut(ActionOutput):
    made: str


class Make(Action[MakeIn, MakeOut]):
    """Records what it makes and unmakes, so tests can see side effects and their undoing."""

    id = "test:make"
    description = "make a thing"
    input_model = MakeIn
    output_model = MakeOut
    supports_dry_run = False
    made: ClassVar[set[str]] = set()

    def run(self, ctx: ActionContext, params: MakeIn) -> MakeOut:
        if params.fail:
            raise RuntimeError(f"could not make {params.name}")
        self.made.add(params.name)
        JOURNAL.append(f"make {params.name}")
        return MakeOut(made=f"{params.name}!")

    def rollback(self, ctx: ActionContext, params: MakeIn, output: MakeOut) -> None:
        self.made.discard(params.name)
        JOURNAL.append(f"unmake {params.name}")


class EchoIn(ActionInput):
    value: Any = None


class EchoOut(ActionOutput):
    value: Any = None


class Echo(Action[EchoIn, EchoOut]):
    id = "test:echo"
    description = "echo"
    input_model = EchoIn
    output_model = EchoOut
    supports_dry_run = True

    def run(self, ctx: ActionContext, params: EchoIn) -> EchoOut:
        JOURNAL.append(f"echo {params.value!r}")
        return EchoOut(value=params.value)


@pytest.fixture(autouse=True)
def _clean() -> None:
    JOURNAL.clear()
    Make.made.clear()


def _template(tmp_path: Path, steps: str, params: str = "{}") -> Template:
    return load_template(write_template(tmp_path / "t", f"""
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {{name: t}}
spec:
  type: service
  parameters: {params}
  steps:
{steps}
  output:
    links:
      - title: made
        url: https://x/${{{{ steps.a.output.made }}}}
"""))


def _run(template: Template, values: dict[str, Any] | None = None, **kw: Any) -> TemplateRun:
    return TemplateRun(template, values or {}, registry=ActionRegistry([Make, Echo]), **kw)


STEPS = """
    - id: a
      action: test:make
      input: {name: "${{ parameters.name }}"}
    - id: b
      action: test:echo
      if: ${{ parameters.loud }}
      input: {value: "${{ steps.a.output.made }}"}
    - id: c
      action: test:make
      input: {name: second, fail: "${{ parameters.fail }}"}
"""
PARAMS = ("{properties: {name: {type: string, default: one}, loud: {type: boolean, default: true},"
          " fail: {type: boolean, default: false}}}")


def test_steps_run_in_order_and_outputs_flow_forward(tmp_path: Path) -> None:
    run = _run(_template(tmp_path, STEPS, PARAMS))
    result = run.run()
    assert JOURNAL == ["make one", "echo 'one!'", "make second"]
    assert [s.status for s in result.steps] == ["completed"] * 3
    assert result.output["links"][0]["url"] == "https://x/one!"


def test_if_false_skips_the_step(tmp_path: Path) -> None:
    result = _run(_template(tmp_path, STEPS, PARAMS), {"loud": False}).run()
    assert JOURNAL == ["make one", "make second"]
    assert result.steps[1].status == "skipped"
    assert result.steps[1].reason == "if: condition is false"


def test_failure_rolls_back_completed_steps_newest_first(tmp_path: Path) -> None:
    steps = STEPS + """
    - id: d
      action: test:make
      input: {name: third}
"""
    run = _run(_template(tmp_path, steps, PARAMS), {"fail": True})
    seen = []
    with pytest.raises(StepFailedError) as info:
        run.run(listener=lambda report: seen.append((report.id, report.status)))
    assert JOURNAL == ["make one", "echo 'one!'", "unmake one"]  # d never ran
    assert Make.made == set()
    assert info.value.step_id == "c" and info.value.rolled_back == ["b", "a"]
    assert "step 'c' (test:make) failed: RuntimeError: could not make second" in str(info.value)
    assert ("c", "failed") in seen and ("a", "rolled-back") in seen


def test_an_expression_error_mid_run_rolls_back_and_names_step_and_field(tmp_path: Path) -> None:
    steps = """
    - id: a
      action: test:make
      input: {name: one}
    - id: b
      action: test:echo
      input: {value: "${{ range(10 ** 9) | list }}"}
"""
    # (``'x' * 10 ** 9`` is NaN under the JavaScript semantics Backstage rendering follows, not
    # an error; a range over the sandbox's item budget still is)
    run = _run(_template(tmp_path, steps))
    with pytest.raises(StepFailedError) as info:
        run.run()
    assert isinstance(info.value.__cause__, ExpressionError)
    assert "step 'b' field input.value" in str(info.value)
    assert Make.made == set() and info.value.rolled_back == ["a"]


def test_rollback_failures_are_reported_and_the_rest_still_undone(tmp_path: Path) -> None:
    class Stubborn(Make):
        id = "test:stubborn"

        def rollback(self, ctx: ActionContext, params: MakeIn, output: MakeOut) -> None:
            raise RuntimeError("cannot undo")

    steps = """
    - {id: a, action: test:make, input: {name: one}}
    - {id: b, action: test:stubborn, input: {name: two}}
    - {id: c, action: test:make, input: {name: three, fail: true}}
"""
    run = TemplateRun(_template(tmp_path, steps), {},
                      registry=ActionRegistry([Make, Echo, Stubborn]))
    with pytest.raises(StepFailedError) as info:
        run.run()
    assert info.value.rolled_back == ["a"]
    assert info.value.rollback_failures == ["b: cannot undo"]
    assert "ROLLBACK FAILED for: b: cannot undo" in str(info.value)


def test_dry_run_fakes_actions_that_cannot_dry_run(tmp_path: Path) -> None:
    result = _run(_template(tmp_path, STEPS, PARAMS), dry_run=True).run()
    assert Make.made == set()
    assert JOURNAL == ["echo 'dry-run:test:make.made'"]
    assert [s.status for s in result.steps] == ["faked", "dry-run", "faked"]


def test_dry_run_reports_and_skips_unknown_actions(tmp_path: Path) -> None:
    steps = STEPS + "    - {id: z, action: acme:deploy-rocket, input: {}}\n"
    result = _run(_template(tmp_path, steps, PARAMS), dry_run=True).run()
    assert result.steps[-1].status == "skipped"
    assert result.steps[-1].reason is not None
    assert result.steps[-1].reason.startswith("unknown action 'acme:deploy-rocket': not run")


def test_real_run_refuses_unknown_actions_before_any_step(tmp_path: Path) -> None:
    steps = STEPS + "    - {id: z, action: acme:deploy-rocket, input: {}}\n"
    with pytest.raises(UnknownActionError, match="available actions: test:echo, test:make"):
        _run(_template(tmp_path, steps, PARAMS)).run()
    assert JOURNAL == []


def test_invalid_action_input_is_refused_before_running(tmp_path: Path) -> None:
    steps = """
    - {id: a, action: test:make, input: {name: one}}
    - {id: b, action: test:make, input: {nmae: typo}}
"""
    with pytest.raises(StepFailedError) as info:
        _run(_template(tmp_path, steps)).run()
    cause = info.value.__cause__
    assert isinstance(cause, ActionInputError)
    assert ("name", "Field required") in cause.problems
    assert ("nmae", "Extra inputs are not permitted") in cause.problems
    assert Make.made == set()


def test_bad_parameters_fail_before_anything(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"\$\.loud: 'yes' is not of type 'boolean'"):
        _run(_template(tmp_path, STEPS, PARAMS), {"loud": "yes"})
    assert JOURNAL == []


def test_secrets_render_as_names_never_values(tmp_path: Path) -> None:
    steps = """
    - {id: a, action: test:echo, input: {value: "${{ secrets.db_password }}"}}
    - {id: b, action: test:echo, input: {value: "pw=${{ secrets.db_password }}"}}
"""
    run = _run(_template(tmp_path, steps), secret_names=["db_password"])
    run.run()
    assert JOURNAL == ["echo SecretRef(name='db_password')", "echo 'pw=secret:db_password'"]
    with pytest.raises(StepFailedError, match="secrets"):
        _run(_template(tmp_path, steps)).run()  # an unknown secret name is an error
