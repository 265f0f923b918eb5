"""Budgets of a run: parameter patterns on RE2 (linear time), string lengths, each: items.
Each case took seconds to minutes, or made 100,000 task runs, before."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from envforge.actions.registry import default_registry
from envforge.errors import BudgetExceededError, ParameterError, TemplateError
from envforge.run.runner import TemplateRun
from envforge.templating.loader import load_template
from envforge.templating.model import Template
from envforge.templating.parameters import form_schema, schema_problems, validate_parameters
from tests.helpers import write_template


def _template(tmp_path: Path, properties: str, steps: str = "[]") -> Template:
    directory = write_template(tmp_path / "t", f"""\
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {{name: budgets}}
        spec:
          type: service
          parameters:
            - properties:
{properties}
          steps: {steps}
        """)
    return load_template(directory)


CATASTROPHIC = "                name: {type: string, pattern: '^(a+)+$'}"


def test_a_catastrophic_pattern_answers_at_once(tmp_path: Path) -> None:
    template = _template(tmp_path, CATASTROPHIC)
    started = time.monotonic()
    with pytest.raises(ParameterError, match="does not match"):
        validate_parameters(template, {"name": "a" * 27 + "!"})
    with pytest.raises(ParameterError):
        validate_parameters(template, {"name": "a" * 5000 + "!"})
    assert time.monotonic() - started < 0.5  # Python's re takes ~35 s on the first alone
    assert validate_parameters(template, {"name": "aaaa"}) == {"name": "aaaa"}


def test_a_pattern_re2_cannot_run_is_a_schema_problem(tmp_path: Path) -> None:
    template = _template(tmp_path, "                name: {type: string, pattern: '^(?=a)a$'}")
    problems = schema_problems(template)
    assert len(problems) == 1 and "RE2" in problems[0] and "properties/name/pattern" in problems[0]
    with pytest.raises(TemplateError, match="RE2"):
        validate_parameters(template, {"name": "aa"})


def test_pattern_properties_run_on_re2_too(tmp_path: Path) -> None:
    template = _template(tmp_path, """\
                labels:
                  type: object
                  patternProperties: {'^(x+)+$': {type: integer}}""")
    started = time.monotonic()
    with pytest.raises(ParameterError):
        validate_parameters(template, {"labels": {"xxx": "not a number", "x" * 40 + "!": 1}})
    assert time.monotonic() - started < 0.5


def test_the_run_form_carries_no_pattern_for_the_prefect_server_to_run(tmp_path: Path) -> None:
    form = form_schema(_template(tmp_path, CATASTROPHIC))
    assert "pattern" not in str(form)
    assert form["properties"]["name"]["type"] == "string"


def test_string_values_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = _template(tmp_path, "                name: {type: string}")
    with pytest.raises(ParameterError, match="more than the 10,000 allowed"):
        validate_parameters(template, {"name": "x" * 10_001})
    monkeypatch.setenv("ENVFORGE_MAX_STRING_LENGTH", "5")
    with pytest.raises(ParameterError, match=r"tags\[1\]"):
        validate_parameters(template, {"name": "abc", "tags": ["ok", "too long"]})


def test_one_each_over_100000_items_is_refused_before_any_task_run(tmp_path: Path) -> None:
    template = _template(tmp_path, "                n: {type: integer}", """
            - id: many
              each: ${{ range(100000) | list }}
              action: debug:log
              input: {message: "${{ each.value }}"}""")
    run = TemplateRun(template, {"n": 1}, registry=default_registry())
    started = time.monotonic()
    try:
        with pytest.raises(BudgetExceededError, match="100,000 items, more than the 1,000"):
            run.prepare_all(template.spec.steps[0])
    finally:
        run.close()
    assert time.monotonic() - started < 5
