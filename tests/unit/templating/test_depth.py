"""A 5000-deep expression is a one-line error naming where it is, never a RecursionError."""

from __future__ import annotations

import pytest

from envforge.actions.fetch import FetchTemplateInput, render_skeleton_text, skeleton_environment
from envforge.errors import ExpressionError
from envforge.templating.expressions import ExpressionEngine

DEEP = [
    "${{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "${{ " + "-" * 5000 + "1 }}",
    "${{ " + "[" * 5000 + "]" * 5000 + " }}",
    "x ${{ " + "not " * 5000 + "1 }}",
    "${{ " + "1 + " * 5000 + "1 }}",
    "${{ a" + ".b" * 5000 + " }}",
]


@pytest.mark.parametrize("text", DEEP, ids=range(len(DEEP)))
def test_deep_expressions_are_one_line_errors(text: str) -> None:
    with pytest.raises(ExpressionError) as info:
        ExpressionEngine().render_value({"v": text}, {}, "step 's' field input")
    message = str(info.value)
    assert message.startswith("step 's' field input.v:") and "\n" not in message
    assert "nested too deeply" in message
    with pytest.raises(ExpressionError, match="nested too deeply"):
        render_skeleton_text(skeleton_environment(FetchTemplateInput(url=".")), text, {},
                             "skeleton/deep.txt")
