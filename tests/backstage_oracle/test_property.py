"""Generated expressions and values, rendered by envforge and by real nunjucks: wherever
nunjucks (as Backstage runs it) renders, envforge writes the same text."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from envforge.errors import ExpressionError
from tests.backstage_oracle import engines
from tests.backstage_oracle.client import Oracle, OracleError

_SAFE_TEXT = st.text(alphabet="abcXYZ -_/.,01", max_size=8)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000)
    | st.floats(-1000, 1000, allow_nan=False).map(lambda f: round(f, 3)) | _SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
    max_leaves=6,
)

VARIABLES = ["values.v0", "values.v1", "values.v2", "values.missing", "values.v0.a",
             "values.v1[0]", "values.v2.length"]


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value) if value >= 0 else f"({value!r})"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    # spaced braces: nunjucks ends a tag at the first "}}", even inside an object literal
    return "{ " + ", ".join(f"{k}: {_literal(v)}" for k, v in value.items()) + " }"


atoms = st.sampled_from(VARIABLES) | json_values.map(_literal)
BINARY = ["+", "-", "*", "/", "%", "==", "===", "!=", "!==", "<", ">=", "and", "or", "~"]
FILTERS = ["title", "capitalize", "upper", "lower", "length", "dump", "join(',')", "first",
           "last", "default('d')", "default('d', true)", "string", "int", "float", "round",
           "replace('a', 'b')", "trim", "reverse", "truncate(3)", "list"]

expressions = st.recursive(
    atoms,
    lambda inner: st.tuples(inner, st.sampled_from(BINARY), inner).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})")
    | st.tuples(inner, st.sampled_from(FILTERS)).map(lambda t: f"({t[0]} | {t[1]})")
    | inner.map(lambda e: f"(not {e})")
    | st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=expressions, v0=json_values, v1=json_values, v2=json_values)
def test_generated_expressions_render_as_nunjucks_does(oracle: Oracle, expr: str, v0: Any,
                                                       v1: Any, v2: Any) -> None:
    values = {"v0": v0, "v1": v1, "v2": v2}
    text = f"<${{{{ {expr} }}}}>"
    try:
        expected = oracle.render(text, {"values": values})
    except OracleError:
        assume(False)  # nunjucks refuses it (a type error in JavaScript): no oracle answer
    try:
        got = engines.render_file(text, values)
    except ExpressionError as e:
        raise AssertionError(f"nunjucks renders {text!r} as {expected!r}; envforge: {e}") \
            from None
    assert got == expected, text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=expressions, v0=json_values, v1=json_values, v2=json_values)
def test_generated_values_reach_actions_as_in_backstage(oracle: Oracle, expr: str, v0: Any,
                                                        v1: Any, v2: Any) -> None:
    context = {"values": {"v0": v0, "v1": v1, "v2": v2}}
    value = f"${{{{ {expr} }}}}"
    try:
        expected = oracle.render_value(value, context)
    except OracleError:
        assume(False)
    assume(expected != value)  # Backstage passes the text on as is when nunjucks fails
    assert engines.render_value(value, context) == expected, value
