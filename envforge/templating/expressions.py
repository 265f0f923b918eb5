"""``${{ … }}`` expressions, evaluated in a Jinja2 sandbox with StrictUndefined.

A value that is exactly one expression keeps the expression's type (``${{ parameters.debug }}``
stays a boolean); any other string is rendered as text. Everything a template author writes goes
through :class:`ExpressionEngine`; a missing name, a syntax error or a sandbox escape becomes an
:class:`~envforge.errors.ExpressionError` naming where it happened.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from envforge.errors import ExpressionError
from envforge.templating.filters import FILTERS

EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
WHOLE_EXPRESSION = re.compile(r"^\s*\$\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.DOTALL)


def make_environment() -> SandboxedEnvironment:
    """The sandbox for author-written text: `${{ }}` for values, Nunjucks-style blocks."""
    env = SandboxedEnvironment(
        undefined=StrictUndefined,
        variable_start_string="${{",
        variable_end_string="}}",
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(FILTERS)
    return env


class ExpressionEngine:
    """Renders values (strings, lists, dicts, nested) against a context mapping."""

    def __init__(self) -> None:
        self.env = make_environment()

    def render_value(self, value: Any, context: Mapping[str, Any], where: str) -> Any:
        """Render every expression inside ``value``; ``where`` names it in errors."""
        if isinstance(value, str):
            return self._render_string(value, context, where)
        if isinstance(value, Mapping):
            return {
                k: self.render_value(v, context, f"{where}.{k}") for k, v in value.items()
            }
        if isinstance(value, list):
            return [
                self.render_value(v, context, f"{where}[{i}]") for i, v in enumerate(value)
            ]
        return value

    def evaluate_condition(self, value: Any, context: Mapping[str, Any], where: str) -> bool:
        """A step's ``if``: an expression or a literal; falsy strings like 'false' are false."""
        result = self.render_value(value, context, where)
        if isinstance(result, str):
            return result.strip().lower() not in ("", "false", "0", "no", "none", "null")
        return bool(result)

    def check_syntax(self, value: Any, where: str) -> list[str]:
        """Syntax problems in every expression of ``value`` (no evaluation)."""
        problems: list[str] = []
        if isinstance(value, str):
            if "${{" in value:
                try:
                    self.env.parse(value)
                except TemplateSyntaxError as e:
                    problems.append(f"{where}: {e.message}")
        elif isinstance(value, Mapping):
            for k, v in value.items():
                problems += self.check_syntax(v, f"{where}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                problems += self.check_syntax(v, f"{where}[{i}]")
        return problems

    def _render_string(self, text: str, context: Mapping[str, Any], where: str) -> Any:
        if "${{" not in text:
            return text
        whole = WHOLE_EXPRESSION.match(text)
        try:
            if whole:
                expr = whole.group("expr")
                result = self.env.compile_expression(expr, undefined_to_none=False)(**context)
                _raise_if_undefined(result)
                return result
            return self.env.from_string(text).render(**context)
        except UndefinedError as e:
            raise ExpressionError(where, _first_expression(text), f"{e.message}") from None
        except SecurityError as e:
            raise ExpressionError(
                where, _first_expression(text), f"not allowed in the sandbox ({e})"
            ) from None
        except TemplateSyntaxError as e:
            raise ExpressionError(where, _first_expression(text), f"syntax: {e.message}") from None
        except Exception as e:  # a filter raising, a type error inside the expression
            raise ExpressionError(
                where, _first_expression(text), f"{type(e).__name__}: {e}"
            ) from None


def _first_expression(text: str) -> str:
    match = EXPRESSION.search(text)
    return match.group(1).strip() if match else text


def _raise_if_undefined(value: Any) -> None:
    """compile_expression returns Undefined instead of raising; make StrictUndefined strict."""
    if isinstance(value, Undefined):
        str(value)  # raises UndefinedError with Jinja's own message
    elif isinstance(value, Mapping):
        for item in value.values():
            _raise_if_undefined(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _raise_if_undefined(item)
