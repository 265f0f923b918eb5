import pytest

from envforge.errors import ExpressionError
from envforge.templating.expressions import ExpressionEngine

CTX = {
    "parameters": {"name": "Shop API", "debug": True, "replicas": 3, "tags": ["a", "b"]},
    "steps": {"fetch": {"output": {"files": ["x"]}}},
    "environment": {"name": "pr-1"},
    "secrets": {},
}


@pytest.fixture
def engine() -> ExpressionEngine:
    return ExpressionEngine()


def test_whole_value_expression_keeps_its_type(engine: ExpressionEngine) -> None:
    assert engine.render_value("${{ parameters.debug }}", CTX, "x") is True
    assert engine.render_value("${{ parameters.replicas }}", CTX, "x") == 3
    # only a value that is exactly one tag keeps its type (Backstage): text around it makes
    # it text, the list written the JavaScript way
    assert engine.render_value(" ${{ parameters.tags }} ", CTX, "x") == " a,b "
    assert engine.render_value("${{ steps.fetch.output.files }}", CTX, "x") == ["x"]


def test_mixed_text_renders_to_a_string(engine: ExpressionEngine) -> None:
    assert engine.render_value("r=${{ parameters.replicas }}", CTX, "x") == "r=3"
    assert (
        engine.render_value("${{ parameters.name | dns_label }}-${{ environment.name }}", CTX, "x")
        == "shop-api-pr-1"
    )


def test_nested_structures_render_everywhere(engine: ExpressionEngine) -> None:
    value = {"a": ["${{ parameters.debug }}", {"b": "${{ parameters.name }}"}], "n": 1}
    assert engine.render_value(value, CTX, "x") == {"a": [True, {"b": "Shop API"}], "n": 1}


@pytest.mark.parametrize(
    "expr", ["${{ parameters.missing }}", "x ${{ parameters.missing }}", "${{ [nothing] }}"]
)
def test_strict_engine_names_undefined_and_where(expr: str) -> None:
    with pytest.raises(ExpressionError) as info:
        ExpressionEngine(strict=True).render_value(
            {"values": {"name": expr}}, CTX, "step 'fetch' field input")
    assert "step 'fetch' field input.values.name" in str(info.value)
    assert "undefined" in str(info.value) or "no attribute" in str(info.value)


def test_undefined_renders_as_nunjucks_does(engine: ExpressionEngine) -> None:
    # a whole undefined value is dropped from its mapping (the action default applies)
    assert engine.render_value({"a": "${{ parameters.missing }}", "b": 1}, CTX, "x") == {"b": 1}
    assert engine.render_value("x ${{ parameters.missing.deeper }}y", CTX, "x") == "x y"
    assert engine.render_value("${{ [nothing] }}", CTX, "x") == [None]
    assert engine.render_value("${{ parameters.missing }}", CTX, "x") is None
    assert engine.render_value("[${{ 'on' if parameters.debug }}]", CTX, "x") == "[on]"
    assert engine.render_value("[${{ 'on' if not parameters.debug }}]", CTX, "x") == "[]"


@pytest.mark.parametrize(
    "expr",
    [
        "${{ ''.__class__.__mro__[1].__subclasses__() }}",
        "${{ parameters.__class__ }}",
        "${{ (parameters.name).format.__globals__ }}",
        "${{ cycler.__init__.__globals__.os }}",
    ],
)
def test_sandbox_escapes_are_refused(engine: ExpressionEngine, expr: str) -> None:
    with pytest.raises(ExpressionError) as info:
        engine.render_value(expr, CTX, "step 'x' field input.cmd")
    assert "step 'x' field input.cmd" in str(info.value)


def test_syntax_errors_are_reported_without_evaluating(engine: ExpressionEngine) -> None:
    problems = engine.check_syntax({"a": "${{ parameters.( }}"}, "step 's' field input")
    assert problems and "step 's' field input.a" in problems[0]
    with pytest.raises(ExpressionError, match="syntax"):
        engine.render_value("${{ parameters.( }}", CTX, "x")


def test_conditions(engine: ExpressionEngine) -> None:
    assert engine.evaluate_condition("${{ parameters.debug }}", CTX, "if") is True
    assert engine.evaluate_condition("${{ not parameters.debug }}", CTX, "if") is False
    assert engine.evaluate_condition("${{ false }}", CTX, "if") is False
    assert engine.evaluate_condition(False, CTX, "if") is False
    # Backstage's isTruthy() of the text "false" is true (only a real boolean is false)
    assert engine.evaluate_condition("false", CTX, "if") is True
    assert engine.evaluate_condition("${{ parameters.replicas > 2 }}", CTX, "if") is True


def test_the_failing_expression_of_several_is_the_one_named(engine: ExpressionEngine) -> None:
    text = ("${{ parameters.name }} and ${{ parameters.name | dns_label }} "
            "${{ '{:>999999999}'.format(1) }}")
    with pytest.raises(ExpressionError) as info:
        engine.render_value(text, CTX, "step 's' field input.message")
    assert "'{:>999999999}'.format(1)" in str(info.value)
    assert str(info.value).startswith("step 's' field input.message:")
