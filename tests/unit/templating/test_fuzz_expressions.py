"""Fuzzing the expression evaluator (issue 12): random expressions built from the sandbox's
operators, literals, filters and method calls either render or fail with one ExpressionError
line naming the place, within the budget; never another exception, never a hang."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envforge.errors import ExpressionError
from envforge.templating.budget import Budget
from envforge.templating.expressions import ExpressionEngine

pytestmark = pytest.mark.fuzz

CTX = {"parameters": {"name": "shop", "n": 3, "tags": ["a", "b"], "obj": {"k": "v"}},
       "steps": {}, "environment": {"name": "pr-1"}, "secrets": {}}
ENGINE = ExpressionEngine(budget=Budget(seconds=1.0))
WHERE = "step 'fuzz' field input.value"

atoms = st.one_of(
    st.integers(min_value=-10**6, max_value=10**6).map(str),
    st.sampled_from(["'a'", "'{:>9}'", "'%5d'", "''", "[1, 2]", "{'k': 1}", "none", "null",
                     "true", "parameters.name", "parameters.n", "parameters.tags",
                     "parameters.obj", "parameters.missing", "environment", "range(5)",
                     "10 ** 10", "99999999"]),
)


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "**", "%", "//", "~", "==", "===",
                                             "!==", "<", "and", "or", "in"]), children)
        .map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(children, st.sampled_from(["dump", "length", "upper", "join(',')",
                                             "center(50)", "indent(4)", "replace('a', 'bb')",
                                             "default('x')", "list", "string", "first",
                                             "tojson", "parseEntityRef", "dns_label", "sum"]))
        .map(lambda t: f"({t[0]} | {t[1]})"),
        st.tuples(children, st.sampled_from([".format(1)", ".ljust(20)", ".length",
                                             ".toLowerCase()", "[0]", ".k", ".__class__"]))
        .map(lambda t: f"{t[0]}{t[1]}"),
        st.tuples(children, children).map(lambda t: f"({t[0]} if {t[1]})"),
        st.tuples(children, children).map(lambda t: f"[{t[0]}, {t[1]}]"),
    )


expressions = st.recursive(atoms, _extend, max_leaves=8)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(expr=expressions, whole=st.booleans())
def test_expressions_render_or_fail_cleanly_within_budget(expr: str, whole: bool) -> None:
    text = f"${{{{ {expr} }}}}" if whole else f"x ${{{{ {expr} }}}} y"
    started = time.monotonic()
    try:
        ENGINE.render_value({"value": text}, CTX, "step 'fuzz' field input")
    except ExpressionError as e:
        message = str(e)
        assert message.startswith(WHERE) and "\n" not in message
        assert "Traceback" not in message
    assert time.monotonic() - started < 5.0


yaml_fragments = st.lists(st.sampled_from([
    "a: &x [1, 2]\n", "b: *x\n", "c: [*x, *x, *x]\n", "{", "}", "[", "]", ": ", "- ", "  ",
    "\n", "key", "'q'", '"dq"', "&a ", "*a ", "!!python/object:os.system ", "!!binary x",
    "<<: *x\n", "apiVersion: scaffolder.backstage.io/v1beta3\n", "kind: Template\n",
    "metadata: {name: t}\n", "spec: {type: s, steps: [{action: debug:log}]}\n", "\t", "#",
    "%YAML 1.1\n", "---\n", "...\n", "? ", "|\n", ">\n", "\x00", "\ufeff",
]), max_size=40).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=yaml_fragments)
def test_the_loader_loads_or_gives_one_line(text: str) -> None:
    import tempfile
    from pathlib import Path

    from envforge.errors import TemplateFormatError
    from envforge.templating.loader import load_template

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "template.yaml").write_text(text, encoding="utf-8", errors="replace")
        try:
            load_template(tmp)
        except TemplateFormatError as e:
            assert "\n" not in str(e) and str(e).startswith(tmp)
