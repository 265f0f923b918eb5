"""The runner's step graph and parallel schedule, without Prefect: which steps wait for which,
that independent steps really run at the same time, and failure and rollback across branches."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.actions.registry import ActionRegistry
from envforge.errors import StepFailedError, TemplateError
from envforge.run.runner import TemplateRun
from envforge.run.step_graph import referenced_steps, step_dependencies
from envforge.templating.loader import load_template
from envforge.templating.model import Template, TemplateStep
from tests.helpers import write_template

JOURNAL: list[str] = []
LOCK = threading.Lock()
#: generous: only reached when the runner wrongly runs steps one by one (the test then fails)
MEET_TIMEOUT_S = 10.0


def _log(line: str) -> None:
    with LOCK:
        JOURNAL.append(line)


class MeetIn(ActionInput):
    name: str
    meet: str = ""  # steps with the same ``meet`` wait at one barrier: they must overlap
    fail: bool = False
    wait_for: str = ""  # an event another step sets when it ends


class MeetOut(ActionOutput):
    name: str


class Meet(Action[MeetIn, MeetOut]):
    """Touches nothing shared (``resources = {}``), so the runner may run it in parallel."""

    id = "test:meet"
    description = "meet other steps"
    input_model = MeetIn
    output_model = MeetOut
    supports_dry_run = False
    resources: ClassVar[dict[str, str]] = {}
    barriers: ClassVar[dict[str, threading.Barrier]] = {}
    events: ClassVar[dict[str, threading.Event]] = {}

    def run(self, ctx: ActionContext, params: MeetIn) -> MeetOut:
        _log(f"start {params.name}")
        if params.meet:
            Meet.barriers[params.meet].wait(MEET_TIMEOUT_S)  # BrokenBarrierError if alone
        if params.wait_for:
            assert Meet.events.setdefault(params.wait_for, threading.Event()).wait(MEET_TIMEOUT_S)
        if params.fail:
            _log(f"fail {params.name}")
            raise RuntimeError(f"{params.name} broke")
        _log(f"end {params.name}")
        Meet.events.setdefault(params.name, threading.Event()).set()
        return MeetOut(name=params.name)

    def rollback(self, ctx: ActionContext, params: MeetIn, output: MeetOut) -> None:
        _log(f"undo {params.name}")


@pytest.fixture(autouse=True)
def _clean() -> None:
    JOURNAL.clear()
    Meet.barriers.clear()
    Meet.events.clear()


def _template(tmp_path: Path, steps: str) -> Template:
    return load_template(write_template(tmp_path / "t", f"""
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {{name: t}}
spec:
  type: service
  steps:
{steps}
"""))


def _run(template: Template, **kw: Any) -> TemplateRun:
    return TemplateRun(template, {}, registry=ActionRegistry([Meet]), **kw)


def _steps(*specs: tuple[str, str, dict[str, Any]]) -> list[TemplateStep]:
    return [TemplateStep.model_validate({"id": i, "action": a, **rest}) for i, a, rest in specs]


# --- the graph ------------------------------------------------------------------------------

def test_expressions_name_the_steps_they_read() -> None:
    assert referenced_steps("${{ steps.image.output.image }}") == {"image"}
    assert referenced_steps({"a": ["x ${{ steps['db-1'].output.name }}"]}) == {"db-1"}
    assert referenced_steps("{% if steps.a.output.ok %}y{% endif %}") == {"a"}
    assert referenced_steps("${{ parameters.steps }} and steps.a in plain text") == set()
    assert referenced_steps("${{ steps[parameters.which].output }}") == {"*"}


def test_reads_resources_and_publish_decide_who_waits() -> None:
    deps = step_dependencies(_steps(
        ("image", "image:build", {}),
        ("db", "db:seed", {}),
        ("secrets", "vault:secrets", {}),
        ("deliver", "kubernetes:secret", {"input": {"fromStep": "secrets"}}),
        ("db2", "db:snapshot", {}),
        ("fetch", "fetch:template", {"input": {"values": {"i": "${{ steps.image.output.image }}"}}}),
        ("log", "debug:log", {}),
        ("publish", "publish:git", {}),
        ("wait", "argocd:wait", {"input": {"revision": "${{ steps['publish'].output.x }}"}}),
    ))
    assert deps["image"] == deps["db"] == deps["secrets"] == set()
    assert deps["deliver"] == {"secrets"}  # fromStep names it
    assert deps["db2"] == {"db"}  # the same database
    assert deps["fetch"] == {"image", "secrets"}  # reads image; both write the workspace
    assert deps["log"] == {"secrets", "fetch"}  # reads the workspace after its writers
    assert deps["publish"] == {"image", "db", "secrets", "deliver", "db2", "fetch", "log"}
    assert deps["wait"] == {"publish"}


def test_an_unknown_action_runs_alone_and_dependson_forces_order() -> None:
    deps = step_dependencies(_steps(
        ("a", "image:build", {}),
        ("b", "somebody:else", {}),
        ("c", "image:build", {}),
        ("d", "image:build", {"dependsOn": ["c"]}),
    ))
    assert deps == {"a": set(), "b": {"a"}, "c": {"b"}, "d": {"b", "c"}}


def test_dependson_must_name_an_earlier_step(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="dependsOn 'b', which is not a step before it"):
        _template(tmp_path, """
    - {id: a, action: test:meet, input: {name: a}, dependsOn: [b]}
    - {id: b, action: test:meet, input: {name: b}}
""")


# --- the schedule ---------------------------------------------------------------------------

def test_independent_steps_run_at_the_same_time_and_readers_wait(tmp_path: Path) -> None:
    Meet.barriers["x"] = threading.Barrier(3)
    run = _run(_template(tmp_path, """
    - {id: a, action: test:meet, input: {name: a, meet: x}}
    - {id: b, action: test:meet, input: {name: b, meet: x}}
    - {id: c, action: test:meet, input: {name: c, meet: x}}
    - {id: d, action: test:meet, input: {name: "${{ steps.a.output.name }}-${{ steps.c.output.name }}"}}
"""))
    result = run.run()
    assert [s.id for s in result.steps] == ["a", "b", "c", "d"]  # template order, for people
    assert [s.status for s in result.steps] == ["completed"] * 4
    # d reads a's and c's outputs, so it starts after both ended (not after b: it does not
    # read b, and under load b may still be running)
    assert JOURNAL.index("start a-c") > max(JOURNAL.index("end a"), JOURNAL.index("end c"))
    assert JOURNAL.index("end a-c") > JOURNAL.index("start a-c")
    assert sorted(JOURNAL[:3]) == ["start a", "start b", "start c"]  # all met at the barrier


def test_dependson_and_one_at_a_time_keep_template_order(tmp_path: Path) -> None:
    steps = """
    - {id: a, action: test:meet, input: {name: a}}
    - {id: b, action: test:meet, input: {name: b}, dependsOn: [a]}
"""
    _run(_template(tmp_path, steps)).run()
    assert JOURNAL == ["start a", "end a", "start b", "end b"]
    JOURNAL.clear()
    _run(_template(tmp_path / "2", steps.replace(", dependsOn: [a]", "")), max_parallel=1).run()
    assert JOURNAL == ["start a", "end a", "start b", "end b"]


def test_a_failing_branch_lets_running_steps_finish_then_rolls_back_by_completion(
        tmp_path: Path) -> None:
    # b fails while a runs (a ends only after b failed); c waits for b, so never starts;
    # a completes after b failed and is still rolled back, newest completion first.
    Meet.barriers["x"] = threading.Barrier(3)
    run = _run(_template(tmp_path, """
    - {id: z, action: test:meet, input: {name: z}}
    - {id: a, action: test:meet, input: {name: a, meet: x, wait_for: gate}, dependsOn: [z]}
    - {id: b, action: test:meet, input: {name: b, meet: x, fail: true}, dependsOn: [z]}
    - {id: g, action: test:meet, input: {name: gate, meet: x}, dependsOn: [z]}
    - {id: c, action: test:meet, input: {name: c}, dependsOn: [b]}
"""))
    with pytest.raises(StepFailedError) as info:
        run.run()
    assert info.value.step_id == "b"
    assert "start c" not in JOURNAL
    ends = [line.split()[1] for line in JOURNAL if line.startswith("end ")]
    assert ends[0] == "z" and set(ends[1:]) == {"a", "gate"} and ends.index("a") > ends.index("gate")
    undone = [line.split()[1] for line in JOURNAL if line.startswith("undo ")]
    assert undone == ["a", "gate", "z"]  # newest completion first
    assert info.value.rolled_back == ["a", "g", "z"]
    assert {r.id: r.status for r in run.reports} == {
        "z": "rolled-back", "a": "rolled-back", "b": "failed", "g": "rolled-back"}


def test_a_step_after_a_publish_waits_for_it() -> None:
    """Backstage runs steps in order: what comes after publishing expects it done (and a
    failure there must find the publish to roll back), even when it reads nothing of it."""
    deps = step_dependencies(_steps(
        ("fetch", "fetch:template", {}),
        ("publish", "publish:github", {}),
        ("pause", "debug:wait", {}),
        ("image", "image:build", {}),
    ))
    assert deps["pause"] == {"publish"}
    assert deps["image"] == {"publish"}
