"""A skeleton file that fails names the expression that failed, not the first on its line."""

from __future__ import annotations

import pytest

from envforge.errors import ExpressionError
from tests.backstage_oracle import engines


def test_the_failing_expression_is_named_among_several_on_a_line() -> None:
    text = "ok\nkey: ${{ runner.os }}-go-${{ hashFiles('**/go.sum') }}\n"
    with pytest.raises(ExpressionError) as caught:
        engines.render_file(text, {})
    message = str(caught.value)
    assert message.startswith("skeleton/file:2: expression ${{ hashFiles('**/go.sum') }} failed")
    assert "'hashFiles' is undefined" in message


def test_without_a_name_the_first_expression_on_the_line_is_named() -> None:
    with pytest.raises(ExpressionError, match=r"skeleton/file:1: expression \$\{\{ values.a "
                       r"\| nosuchfilter \}\} failed"):
        engines.render_file("${{ values.a | nosuchfilter }} ${{ values.b }}\n", {"a": 1})
