"""Bounded evaluation (issue 12, D4/D5): known bombs are refused fast with a one-line error
naming where they are; what slips past the pre-checks ends within the time budget."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from envforge.errors import ExpressionError, TemplateError, TemplateFormatError
from envforge.templating.budget import Budget, BudgetExceeded, deadline
from envforge.templating.expressions import ExpressionEngine
from envforge.templating.loader import load_template
from envforge.templating.yamlsafe import YamlLimitError, load_yaml

CTX = {"parameters": {"name": "x"}, "steps": {}, "environment": {}, "secrets": {}}
WHERE = "step 'bomb' field input.value"

BOMBS = [
    "${{ 10 ** (10 ** 10) }}",
    "${{ '{:>999999999}'.format(1) }}",
    "${{ '{0:{1}}'.format(1, 10 ** 9) }}",
    "${{ 'a' | center(999999999) }}",
    "${{ 'x'.ljust(10 ** 9) }}",
    "${{ range(10 ** 9) | list }}",
    "${% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}${{ ns.s }}",
    "${% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = [ns.l, ns.l] %}"
    "{% endfor %}${{ ns.l }}",
]


#: Python bombs that JavaScript semantics (Backstage's, which the engine follows) defuse:
#: ``*`` and ``%`` are arithmetic on numbers there, never repetition or formatting
DEFUSED_IN_JAVASCRIPT = {
    "${{ 'a' * 10 ** 9 }}": None,  # NaN, which JSON (Backstage's round trip) makes null
    "${{ [1] * 10 ** 9 }}": 1_000_000_000,
    "${{ [[0] * 100000] * 100000 }}": 0,
    "${{ '%999999999d' % 1 }}": None,
    "${{ '%*d' % (10 ** 9, 1) }}": None,
    "${{ 'ab' | replace('', 'x' * 5000000) }}": "NaNaNaNbNaN",
}


@pytest.mark.parametrize("expr", list(DEFUSED_IN_JAVASCRIPT))
def test_python_bombs_are_plain_arithmetic_in_javascript(expr: str) -> None:
    started = time.monotonic()
    result = ExpressionEngine().render_value({"value": expr}, CTX, "step 'bomb' field input")
    assert time.monotonic() - started < 2.0
    assert result.get("value") == DEFUSED_IN_JAVASCRIPT[expr]


@pytest.mark.parametrize("expr", BOMBS)
def test_known_bombs_are_refused_fast_naming_the_place(expr: str) -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionError) as info:
        ExpressionEngine().render_value({"value": expr}, CTX, "step 'bomb' field input")
    assert time.monotonic() - started < 2.0
    message = str(info.value)
    assert message.startswith(WHERE) and "\n" not in message
    assert "refused by the sandbox" in message


@pytest.mark.parametrize("expr", [
    "x${% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "${% for i in range(100000) %}{% for j in range(100000) %}"
    "{% if i == j and i < 0 %}y{% endif %}{% endfor %}{% endfor %}",
])
def test_slow_loops_end_within_the_time_budget(expr: str) -> None:
    engine = ExpressionEngine(budget=Budget(seconds=0.5))
    started = time.monotonic()
    with pytest.raises(ExpressionError, match="time budget") as info:
        engine.render_value(expr, CTX, WHERE)
    assert time.monotonic() - started < 3.0  # 0.5 s budget, generous bound
    assert str(info.value).startswith(WHERE)


def test_the_time_budget_works_in_a_worker_thread() -> None:
    """Prefect runs tasks in worker threads, where SIGALRM cannot be used."""
    results: list[str] = []

    def work() -> None:
        try:
            ExpressionEngine(budget=Budget(seconds=0.3)).render_value(
                "${% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                "{% endfor %}", CTX, WHERE)
        except ExpressionError as e:
            results.append(str(e))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive() and results and "time budget" in results[0]


def test_output_size_is_bounded() -> None:
    engine = ExpressionEngine(budget=Budget(max_chars=10_000))
    with pytest.raises(ExpressionError, match="10,000 characters"):
        engine.render_value("${% for i in range(100000) %}xxxxxxxxxx{% endfor %}", CTX, WHERE)


def test_ordinary_expressions_still_work_after_a_refusal() -> None:
    engine = ExpressionEngine(budget=Budget(seconds=0.3))
    with pytest.raises(ExpressionError):
        engine.render_value("${% for i in range(100000) %}{% for j in range(100000) %}"
                            "{% endfor %}{% endfor %}", CTX, WHERE)
    assert engine.render_value("${{ 2 ** 10 }}-${{ 'ab' * 3 }}-${{ '{:>4}'.format(1) }}",
                               CTX, WHERE) == "1024-NaN-   1"
    assert engine.render_value("${{ range(3) | list }}", CTX, WHERE) == [0, 1, 2]
    time.sleep(0.4)  # a stale watchdog must not fire into later code
    assert sum(range(1000)) == 499500


def test_deadline_never_fires_after_its_block() -> None:
    for _ in range(200):
        with deadline(0.2):
            pass
    time.sleep(0.3)  # none of the 200 watchdogs may fire into this thread now
    with pytest.raises(BudgetExceeded), deadline(0.05):
        while True:
            pass


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


@pytest.mark.parametrize("text, reason", [
    (ALIAS_BOMB, "expands to more than"),
    ("a: &a [*a]\n", "alias"),
    ("a: " + "[" * 3000 + "]" * 3000 + "\n", "nested deeper"),
])
def test_yaml_bombs_are_refused(text: str, reason: str) -> None:
    started = time.monotonic()
    with pytest.raises(YamlLimitError, match=reason):
        load_yaml(text)
    assert time.monotonic() - started < 5.0


def test_plain_yaml_with_a_few_aliases_loads() -> None:
    assert load_yaml("a: &a {x: 1}\nb: *a\n") == {"a": {"x": 1}, "b": {"x": 1}}


def test_a_huge_template_file_is_refused_before_reading(tmp_path: Path) -> None:
    file = tmp_path / "template.yaml"
    with file.open("w") as f:
        f.write("# " + "x" * (50 * 1024 * 1024) + "\n")
    started = time.monotonic()
    with pytest.raises(TemplateFormatError, match="ENVFORGE_TEMPLATE_MAX_BYTES"):
        load_template(tmp_path)
    assert time.monotonic() - started < 1.0


def test_an_alias_bomb_template_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text(ALIAS_BOMB)
    with pytest.raises(TemplateFormatError) as info:
        load_template(tmp_path)
    assert str(info.value).startswith(str(tmp_path / "template.yaml"))
    assert "\n" not in str(info.value)


def test_values_file_limits(tmp_path: Path) -> None:
    from envforge.cli.common import parse_values
    from envforge.templating.model import Template

    template = Template.model_validate({
        "apiVersion": "scaffolder.backstage.io/v1beta3", "kind": "Template",
        "metadata": {"name": "t"}, "spec": {"type": "service"}})
    bomb = tmp_path / "values.yaml"
    bomb.write_text(ALIAS_BOMB)
    with pytest.raises(TemplateError, match="--values"):
        parse_values(template, [], bomb)
    with pytest.raises(TemplateError, match="ENVFORGE_VALUES_MAX_BYTES"):
        parse_values(template, ["name=" + "x" * (2 << 20)], None)
