"""``${{ … }}`` expressions, evaluated the way Backstage's nunjucks does, in a bounded sandbox.

A value that is exactly one expression keeps the expression's type (``${{ parameters.debug }}``
stays a boolean) and, when undefined, is dropped from its mapping as Backstage drops it (so the
action's default applies); any other string is rendered as text, undefined parts empty.
Strictness lives in ``templates validate``, which collects every undefined name a render used
(:data:`~envforge.templating.sandbox.UNDEFINED_USES`).

Every render runs under a :class:`~envforge.templating.budget.Budget`: a hostile expression
ends with an :class:`~envforge.errors.ExpressionError` naming where it is, within the time
budget. A syntax error, a sandbox refusal or a failing filter is reported the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from jinja2 import Template as JinjaTemplate
from jinja2 import TemplateSyntaxError, Undefined, UndefinedError
from jinja2.exceptions import SecurityError

from envforge.errors import ExpressionError
from envforge.templating import jsvalues
from envforge.templating.budget import Budget, BudgetExceeded, deadline, load_budget
from envforge.templating.filters import FILTERS
from envforge.templating.sandbox import RENDER_WHERE, BoundedSandbox, Refused, nunjucks_to_jinja

EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
WHOLE_EXPRESSION = re.compile(r"^\s*\$\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.DOTALL)


class _Missing:
    """A whole-expression value that is undefined: its key is left out, as Backstage does."""

    def __repr__(self) -> str:
        return "<undefined>"


UNDEFINED = _Missing()


def make_environment(strict: bool = True, budget: Budget | None = None,
                     js: bool | None = None, **options: Any) -> BoundedSandbox:
    """The bounded sandbox for author-written text: ``${{ }}`` for values, ``{% %}`` blocks.

    ``strict`` keeps StrictUndefined (envforge's own manifests); Backstage templates render
    with ``strict=False``, undefined as empty. ``options`` are Jinja2 options such as
    ``trim_blocks``, ``lstrip_blocks`` or other delimiters (cookiecutter compatibility).
    """
    settings: dict[str, Any] = {
        "variable_start_string": "${{",
        "variable_end_string": "}}",
        "keep_trailing_newline": True,
        "autoescape": False,
    }
    settings.update(options)
    js_mode = not strict if js is None else js
    env = BoundedSandbox(budget or load_budget(), strict=strict, js=js_mode, **settings)
    if js_mode:
        env.filters.update(env.bounded_js_filters())
    env.filters.update(FILTERS)
    env.filters.update(env.bounded_extra_filters())
    return env


class ExpressionEngine:
    """Renders values (strings, lists, dicts, nested) against a context mapping."""

    def __init__(self, budget: Budget | None = None, strict: bool = False) -> None:
        self.budget = budget or load_budget()
        self.env = make_environment(strict=strict, budget=self.budget, js=True)
        self._compiled: dict[str, JinjaTemplate] = {}
        self._at: tuple[str, str] = ("", "")

    def render_value(self, value: Any, context: Mapping[str, Any], where: str) -> Any:
        """Render every expression inside ``value``; ``where`` names it in errors.
        A whole value that is one undefined expression renders as None."""
        try:
            with deadline(self.budget.seconds):
                result = self._render(value, context, where)
        except BudgetExceeded:
            at, text = self._at
            raise ExpressionError(
                at or where, _first_expression(text),
                f"ran out of its time budget ({self.budget.seconds:g} s; "
                "ENVFORGE_RENDER_TIMEOUT_S); simplify the expression") from None
        return None if result is UNDEFINED else result

    def evaluate_condition(self, value: Any, context: Mapping[str, Any], where: str) -> bool:
        """A step's ``if`` as Backstage's isTruthy() reads the rendered value: an empty list is
        false, anything else by JavaScript truthiness (so the text ``"false"`` is true)."""
        if value is False:
            return False
        result = self.render_value(value, context, where)
        if isinstance(result, list | tuple):
            return len(result) > 0
        return jsvalues.truthy(result)

    def check_syntax(self, value: Any, where: str) -> list[str]:
        """Syntax problems in every expression of ``value`` (no evaluation)."""
        problems: list[str] = []
        if isinstance(value, str):
            if "${{" in value or "{%" in value:
                try:
                    self.env.parse(nunjucks_to_jinja(value))
                except TemplateSyntaxError as e:
                    problems.append(f"{where}: {e.message}")
        elif isinstance(value, Mapping):
            for k, v in value.items():
                problems += self.check_syntax(v, f"{where}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                problems += self.check_syntax(v, f"{where}[{i}]")
        return problems

    def _render(self, value: Any, context: Mapping[str, Any], where: str) -> Any:
        if isinstance(value, str):
            return self._render_string(value, context, where)
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                rendered = self._render(v, context, f"{where}.{k}")
                if rendered is not UNDEFINED:
                    out[k] = rendered
            return out
        if isinstance(value, list):
            items = [self._render(v, context, f"{where}[{i}]") for i, v in enumerate(value)]
            return [None if v is UNDEFINED else v for v in items]
        return value

    def _render_string(self, text: str, context: Mapping[str, Any], where: str) -> Any:
        if "${{" not in text and "{%" not in text and "{#" not in text:
            return text if text != "" else UNDEFINED  # Backstage drops an empty value
        self._at = (where, text)
        token = RENDER_WHERE.set(where)
        try:
            return self._render_text_value(text, context, where)
        finally:
            RENDER_WHERE.reset(token)

    def _render_text_value(self, text: str, context: Mapping[str, Any], where: str) -> Any:
        """Backstage's NunjucksWorkflowRunner.render(): a value that is one ``${{ }}`` tag
        keeps its type (rendered through ``dump`` and parsed back from JSON: undefined drops
        the value); any other text renders as text, and text that renders empty is dropped."""
        with self._errors_named(where, text, context):
            expr = single_expression(self.env, text)
            if expr is not None and not _LINE_BREAK.search(expr):
                result = self.env.compile_expression(expr, undefined_to_none=False)(**context)
                self.env.check_size(result, "the value")
                if isinstance(result, Undefined):
                    str(result)  # records the use for `validate`
                    return UNDEFINED
                return jsvalues.json_round_trip(result)
            rendered = render_text(self.env, self._template(text), context)
            if rendered == "":
                return UNDEFINED
            if expr is not None:  # one tag over several lines: Backstage parses it as JSON
                try:
                    return json.loads(rendered, parse_constant=_no_constant)
                except ValueError:
                    return rendered
            return rendered

    def _template(self, text: str) -> JinjaTemplate:
        template = self._compiled.get(text)
        if template is None:
            template = self.env.from_string(nunjucks_to_jinja(text))
            if len(self._compiled) < 1024:
                self._compiled[text] = template
        return template

    @contextmanager
    def _errors_named(self, where: str, text: str, context: Mapping[str, Any]
                      ) -> Iterator[None]:
        try:
            yield
        except BudgetExceeded:
            raise
        except Refused as e:
            raise ExpressionError(where, self._culprit(text, context),
                                  f"refused by the sandbox: {e}") from None
        except SecurityError as e:
            raise ExpressionError(where, self._culprit(text, context),
                                  f"not allowed in the sandbox ({e})") from None
        except TemplateSyntaxError as e:
            raise ExpressionError(where, _first_expression(text), f"syntax: {e.message}") \
                from None
        except UndefinedError as e:
            raise ExpressionError(where, self._culprit(text, context), f"{e.message}") from None
        except (MemoryError, RecursionError) as e:
            raise ExpressionError(where, _first_expression(text),
                                  f"too large to evaluate ({type(e).__name__})") from None
        except Exception as e:  # a filter raising, a type error inside the expression
            raise ExpressionError(where, self._culprit(text, context),
                                  f"{type(e).__name__}: {e}") from None

    def _culprit(self, text: str, context: Mapping[str, Any]) -> str:
        """The expression of ``text`` that fails on its own (the first one, if none does);
        evaluated again one by one, still under the caller's deadline."""
        expressions = EXPRESSION.findall(text)
        if len(expressions) < 2:
            return _first_expression(text)
        for expr in expressions:
            try:
                compiled = self.env.compile_expression(nunjucks_to_jinja(expr),
                                                       undefined_to_none=False)
                self.env.check_size(compiled(**context), "the value")
            except BudgetExceeded:
                raise
            except Exception:
                return str(expr).strip()
        return _first_expression(text)


_LINE_BREAK = re.compile("[\n\r\u2028\u2029]")


def _no_constant(name: str) -> Any:
    raise ValueError(name)  # JSON.parse knows no NaN or Infinity


def single_expression(env: BoundedSandbox, text: str) -> str | None:
    """The expression when ``text`` is exactly one ``${{ }}`` tag (nothing before or after,
    as nunjucks parses it), else None."""
    if not text.startswith("${{"):
        return None
    try:
        stream = list(env.lexer.tokeniter(text, None))
    except TemplateSyntaxError:
        return None
    ends = [i for i, (_, kind, _) in enumerate(stream) if kind == "variable_end"]
    if len(ends) != 1 or ends[0] != len(stream) - 1 or stream[0][1] != "variable_begin":
        return None
    if any(kind == "data" for _, kind, _ in stream):
        return None
    end = text.rfind("}}")
    return text[3:end]


def render_text(env: BoundedSandbox, template: JinjaTemplate, context: Mapping[str, Any]) -> str:
    """Render to text, stopping as soon as the output passes the size budget."""
    limit = env.budget.max_chars
    size = 0
    parts: list[str] = []
    for chunk in template.generate(**context):
        size += len(chunk)
        if size > limit:
            raise Refused(f"the rendered text passes {limit:,} characters "
                          "(ENVFORGE_RENDER_MAX_CHARS)")
        parts.append(chunk)
    return "".join(parts)


def _plain(value: Any) -> Any:
    """Undefined parts of a whole-expression value as Backstage's JSON round trip leaves them:
    the value itself undefined, ``null`` in lists, absent from mappings."""
    if isinstance(value, Undefined):
        str(value)  # records the use for `validate`; raises if it was a sandbox refusal
        return UNDEFINED
    if isinstance(value, Mapping) and not isinstance(value, dict):
        return value
    if isinstance(value, dict):
        items = {k: _plain(v) for k, v in value.items()}
        return {k: v for k, v in items.items() if v is not UNDEFINED}
    if isinstance(value, list | tuple):
        return [None if v is UNDEFINED else v for v in map(_plain, value)]
    return value


_BLOCK = re.compile(r"\{%-?\s*(.*?)\s*-?%\}", re.DOTALL)


def _first_expression(text: str) -> str:
    match = EXPRESSION.search(text) or _BLOCK.search(text)
    found = match.group(1).strip() if match else text
    return found if len(found) <= 200 else found[:197] + "..."
