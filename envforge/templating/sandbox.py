"""The Jinja2 sandbox author-written text runs in, bounded and speaking nunjucks.

:class:`BoundedSandbox` is Jinja2's ``SandboxedEnvironment`` (no attribute escapes) plus size
pre-checks for every operation that could spend unbounded time or memory inside one C call:
``*`` and ``+`` on strings and lists, ``**`` and ``*`` on integers, ``%`` and ``str.format``
widths, ``range``, padding filters and methods, list/dict literals that alias themselves into
exponential structures, and ``~`` concatenation. Each refusal raises :class:`Refused`, which the
engine turns into a one-line ExpressionError naming the step or file. A wall-clock deadline
(:mod:`envforge.templating.budget`) covers the rest.

Backstage renders with nunjucks, so the sandbox does too where they differ: an undefined name
renders empty (:class:`NunjucksUndefined`; ``validate`` records every such use), ``===`` and
``!==`` are accepted, ``null`` is ``none``, and nunjucks' filters (``dump``, ``nl2br``, ...)
and a few JavaScript string members (``.length``, ``.toLowerCase()``) exist.
"""

from __future__ import annotations

import contextvars
import math
import re
import string
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.filters import (
    do_batch,
    do_center,
    do_format,
    do_indent,
    do_join,
    do_replace,
    do_slice,
    do_tojson,
)
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from envforge.templating import jsmembers, jsvalues
from envforge.templating.budget import Budget
from envforge.templating.nunjucks_syntax import (
    LOOP_FILTER,
    NunjucksCodeGenerator,
    NunjucksLexer,
    NunjucksParser,
    loop_items,
)


class Refused(Exception):
    """An operation the sandbox will not run because of its size; the message says why."""


# --- undefined, as nunjucks has it -------------------------------------------------------

#: (where, name) of every undefined value a render used; `validate` sets a list to collect
#: them, renders set RENDER_WHERE to the step field or skeleton file being rendered.
UNDEFINED_USES: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar(
    "envforge_undefined_uses", default=None)
RENDER_WHERE: contextvars.ContextVar[str] = contextvars.ContextVar(
    "envforge_render_where", default="")


class NunjucksUndefined(ChainableUndefined):
    """Undefined renders empty and chains (``values.a.b`` of a missing ``a`` is undefined),
    as in nunjucks; a sandbox refusal (unsafe attribute) still fails on any use."""

    __slots__ = ()

    def _record(self) -> None:
        uses = UNDEFINED_USES.get()
        if uses is not None and self._undefined_name is not None:
            uses.append((RENDER_WHERE.get(), str(self._undefined_name)))

    def _fail_if_unsafe(self) -> None:
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()

    def __str__(self) -> str:
        self._fail_if_unsafe()
        self._record()
        return ""

    def __iter__(self) -> Iterator[Any]:
        self._fail_if_unsafe()
        self._record()
        return iter(())

    def __bool__(self) -> bool:
        self._fail_if_unsafe()
        return False

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__":
            raise AttributeError(name)
        self._fail_if_unsafe()
        self._record()
        return self

    def __getitem__(self, name: str) -> NunjucksUndefined:  # type: ignore[override]
        self._fail_if_unsafe()
        self._record()
        return self

    __html__ = __str__

    # arithmetic and ordering as nunjucks ends up rendering them: text joins as if empty,
    # numbers stay undefined, comparisons are false
    def __add__(self, other: Any) -> Any:
        self._fail_if_unsafe()
        self._record()
        return other if isinstance(other, str) else self

    def __radd__(self, other: Any) -> Any:
        self._fail_if_unsafe()
        self._record()
        return other if isinstance(other, str) else self

    def __eq__(self, other: Any) -> bool:  # JavaScript: undefined == null
        return other is None or isinstance(other, Undefined)

    def __ne__(self, other: Any) -> bool:
        return not self.__eq__(other)

    __hash__ = ChainableUndefined.__hash__

    def _false(self, other: Any) -> bool:
        self._fail_if_unsafe()
        return False

    __lt__ = __le__ = __gt__ = __ge__ = _false  # type: ignore[assignment]


def is_undefined(value: Any) -> bool:
    return isinstance(value, Undefined)


# --- nunjucks syntax differences ---------------------------------------------------------

def nunjucks_to_jinja(text: str) -> str:
    """Kept for callers that prepare text for :meth:`BoundedSandbox.parse`: the nunjucks lexer
    (:mod:`envforge.templating.nunjucks_syntax`) reads ``===``/``!==`` itself, inside tags
    only, so the text is no longer rewritten (plain text keeps its ``===``)."""
    return text


# --- size checks ----------------------------------------------------------------------

def deep_size(value: Any, cap: int, chars: bool = True) -> int:
    """Characters (if ``chars``) plus items of ``value``, counting shared parts at every use,
    stopping once past ``cap`` (so a self-aliasing structure of 2**40 paths costs ``cap``
    steps)."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) if chars else 1
        elif isinstance(item, Mapping):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            stack.extend(item)
        else:
            total += 1
        if total > cap:
            return total
    return total


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")


class BoundedSandbox(SandboxedEnvironment):
    """SandboxedEnvironment with size pre-checks; see the module docstring."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, budget: Budget, strict: bool = False, js: bool = False,
                 **kwargs: Any) -> None:
        self.budget = budget
        #: Backstage rendering: nunjucks syntax and JavaScript semantics (jsvalues)
        self.js = js
        if js:
            kwargs.setdefault("optimized", False)  # no Python-semantics constant folding
        super().__init__(
            undefined=StrictUndefined if strict else NunjucksUndefined,
            finalize=self._finalize,
            **kwargs,
        )
        self.code_generator_class = _BoundedJSCodeGenerator if js else _BoundedCodeGenerator
        if js:
            self.filters[LOOP_FILTER] = loop_items
            self.intercepted_binops = frozenset({"*", "**", "%", "+", "-", "/", "//"})
            self._js_lexer: NunjucksLexer | None = None
        self.globals["range"] = self._range
        self.globals["null"] = None
        self.globals.pop("lipsum", None)  # a text generator with a size argument; not nunjucks
        self.filters.update(self._bounded_filters())

    # every {{ }} output and every whole-expression value passes here
    def _finalize(self, value: Any) -> Any:
        value = self.check_size(value, "the value")
        return jsvalues.to_output(value) if self.js else value

    # --- nunjucks syntax and JavaScript semantics (js mode) ----------------------------

    @property
    def lexer(self) -> Any:
        if not getattr(self, "js", False):
            return super().lexer
        if self._js_lexer is None:
            self._js_lexer = NunjucksLexer(self)
        return self._js_lexer

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        try:
            if self.js:
                return NunjucksParser(self, source, name, filename).parse()
            return super()._parse(source, name, filename)
        except RecursionError:
            raise _too_deep(name, filename) from None

    def _generate(self, source: nodes.Template, name: str | None, filename: str | None,
                  defer_init: bool = False) -> str:
        try:
            return super()._generate(source, name, filename, defer_init)
        except RecursionError:
            raise _too_deep(name, filename) from None

    def _compile(self, source: str, filename: str) -> Any:
        try:
            return super()._compile(source, filename)
        except (RecursionError, MemoryError):
            raise _too_deep(None, filename) from None
        except SyntaxError as e:  # Python's own nesting limits (e.g. 200 parentheses)
            if "nested" in str(e) or "too many" in str(e):
                raise _too_deep(None, filename) from None
            raise

    def compile_expression(self, source: str, undefined_to_none: bool = True) -> Any:
        if not self.js:
            return super().compile_expression(source, undefined_to_none)
        from jinja2.environment import TemplateExpression
        from jinja2.exceptions import TemplateSyntaxError

        parser = NunjucksParser(self, source, state="variable")
        try:
            expr = parser.parse_expression()
        except RecursionError:
            raise _too_deep(None, None) from None
        if not parser.stream.eos:
            raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno,
                                      None, None)
        expr.set_environment(self)
        body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
        template = self.from_string(nodes.Template(body, lineno=1))
        return TemplateExpression(template, undefined_to_none)

    @staticmethod
    def js_truthy(value: Any) -> bool:
        return jsvalues.truthy(value)

    @staticmethod
    def js_and(left: Any, right: Callable[[], Any]) -> Any:
        return right() if jsvalues.truthy(left) else left

    @staticmethod
    def js_or(left: Any, right: Callable[[], Any]) -> Any:
        return left if jsvalues.truthy(left) else right()

    @staticmethod
    def js_negate(value: Any) -> Any:
        return jsvalues.negate(value)

    @staticmethod
    def js_compare(left: Any, ops: tuple[tuple[str, Any], ...]) -> Any:
        result = left
        for operator, right in ops:  # chained as JavaScript does: (a < b) < c
            result = jsvalues.compare(operator, result, right)
        return result

    def _js_member(self, obj: Any, key: Any) -> Any:
        if isinstance(obj, Undefined):
            return obj[key] if isinstance(obj, NunjucksUndefined) else obj
        if obj is None:
            return self.undefined(obj=obj, name=str(key))
        if isinstance(obj, dict) and hasattr(type(obj), "__missing__"):
            return obj[key]  # e.g. secrets: an unknown name is an error
        if isinstance(obj, str | list | tuple | Mapping | int | float):
            found = jsmembers.member(obj, key)
            if found is not jsmembers.MISSING:
                return found
            if isinstance(key, str) and key.isidentifier():
                # not JavaScript: Python's members (``.get()``, ``.items()``) stay as an
                # envforge extension, under the sandbox's rules (``__class__`` is refused)
                return _NOT_JS
            return self.undefined(obj=obj, name=str(key))
        return _NOT_JS

    def check_size(self, value: Any, what: str) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            self._check_int(value)
            return value
        if isinstance(value, str | list | tuple | dict | set):
            size = deep_size(value, self.budget.max_chars)
            if size > self.budget.max_chars:
                raise Refused(f"{what} would exceed {self.budget.max_chars:,} characters/items "
                              "(ENVFORGE_RENDER_MAX_CHARS)")
        return value

    def _check_int(self, value: int) -> None:
        if value.bit_length() > self.budget.max_int_bits:
            raise Refused(f"an integer of more than {self.budget.max_int_bits} bits")

    def _range(self, *args: int) -> range:
        rng = range(*args)
        if len(rng) > self.budget.max_items:
            raise Refused(f"range of {len(rng):,} items; at most {self.budget.max_items:,} "
                          "(ENVFORGE_RENDER_MAX_ITEMS)")
        return rng

    def checked_concat(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b``: sizes known before the join."""
        texts = [jsvalues.to_string(p) if self.js else str(p) for p in parts]
        if sum(len(t) for t in texts) > self.budget.max_chars:
            raise Refused(f"'~' would build more than {self.budget.max_chars:,} characters")
        return "".join(texts)

    def literal(self, value: Any) -> Any:
        """A list/dict/tuple literal: refuse one whose nesting multiplies its size."""
        if deep_size(value, self.budget.max_items, chars=False) > self.budget.max_items:
            raise Refused(f"a list or mapping of more than {self.budget.max_items:,} items "
                          "(counting nested ones at every use)")
        return value

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if self.js:
            return self._js_binop(operator, left, right)
        if operator == "**":
            self._check_power(left, right)
        elif operator == "*":
            self._check_product(left, right)
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                cap = self.budget.max_chars
                if deep_size(left, cap) + deep_size(right, cap) > cap:
                    raise Refused(f"'+' would build more than {cap:,} characters/items")
        elif operator == "%" and isinstance(left, str):
            self._check_percent_format(left)
        return super().call_binop(context, operator, left, right)

    def _js_binop(self, operator: str, left: Any, right: Any) -> Any:
        if operator == "+":
            if isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple):
                cap = self.budget.max_chars
                if deep_size(left, cap) + deep_size(right, cap) > cap:
                    raise Refused(f"'+' would build more than {cap:,} characters/items")
            result = jsvalues.add(left, right)
        else:
            if operator == "**":
                self._check_power(jsvalues.to_number(left), jsvalues.to_number(right))
            elif operator == "*":
                x, y = jsvalues.to_number(left), jsvalues.to_number(right)
                if isinstance(x, int) and isinstance(y, int) \
                        and x.bit_length() + y.bit_length() > self.budget.max_int_bits:
                    raise Refused(f"a product of more than {self.budget.max_int_bits} bits")
            result = jsvalues.arithmetic(operator, left, right)
        if isinstance(result, int) and not isinstance(result, bool):
            self._check_int(result)
        return result

    def _check_power(self, base: Any, exp: Any) -> None:
        if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
            bits = exp * math.log2(abs(base))
            if bits > self.budget.max_int_bits:
                raise Refused(f"'{_short(base)} ** {_short(exp)}' is a number of about "
                              f"{bits:,.0f} bits; at most {self.budget.max_int_bits}")

    def _check_product(self, left: Any, right: Any) -> None:
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(n, int):
                cap = self.budget.max_chars if isinstance(seq, str) else self.budget.max_items
                size = deep_size(seq, cap + 1) * max(n, 0)
                if size > cap:
                    raise Refused(f"repetition '* {_short(n)}' would build {size:,} "
                                  f"characters/items; at most {cap:,}")
                return
        if (isinstance(left, int) and isinstance(right, int)
                and left.bit_length() + right.bit_length() > self.budget.max_int_bits):
            raise Refused(f"a product of more than {self.budget.max_int_bits} bits")

    def _check_width(self, number: int, what: str) -> None:
        if number > self.budget.max_width:
            raise Refused(f"{what} {number:,} is wider than {self.budget.max_width:,}")

    def _check_percent_format(self, text: str) -> None:
        for match in _PERCENT_SPEC.finditer(text):
            for part in match.groups():
                if part == "*":
                    raise Refused("'*' widths in '%' formats are not allowed")
                if part:
                    self._check_width(int(part), "format width")

    def check_format_spec(self, spec: str) -> None:
        for digits in _DIGITS.findall(spec):
            self._check_width(int(digits), f"format spec '{spec[:20]}' width")

    # --- method calls: str.format, padding, joins, growing containers ----------------

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        f_self: str = value.__self__
        formatter = _BoundedFormatter(self)
        is_map = value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            return str(self.check_size(formatter.vformat(f_self, args, kwargs), "format()"))
        return bounded

    def getitem(self, obj: Any, argument: Any) -> Any:
        if self.js:
            found = self._js_member(obj, argument)
            if found is not _NOT_JS:
                return found
        return super().getitem(obj, argument)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if self.js:
            found = self._js_member(obj, attribute)
            if found is not _NOT_JS:
                return found
            return super().getattr(obj, attribute)
        # nunjucks: ``values.items`` is the key 'items', not the dict method
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        if isinstance(obj, str | list | tuple | dict) and attribute == "length":
            return len(obj)
        if isinstance(obj, str) and attribute in _JS_STRING:
            return _JS_STRING[attribute](obj)
        return super().getattr(obj, attribute)

    def call(__self, __context: Context, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            __self._check_str_method(owner, name, args)
        elif (isinstance(owner, list | dict | set) and name in _GROWING
              and len(owner) >= __self.budget.max_items):
                raise Refused(f".{name}() on a collection of {len(owner):,} items; at most "
                              f"{__self.budget.max_items:,}")
        result = super().call(__context, __obj, *args, **kwargs)
        return result

    def _check_str_method(self, owner: str, name: str, args: tuple[Any, ...]) -> None:
        if name in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
            self._check_width(args[0], f"{name}() width")
        elif name == "expandtabs" and args and isinstance(args[0], int):
            self._check_width(args[0], "expandtabs() size")
        elif name == "replace" and len(args) >= 2:
            self._check_replace(owner, args[0], args[1])
        elif name == "join" and args:
            self.check_size([owner, *list(args[0])[: self.budget.max_items + 1]], "join()")

    def _check_replace(self, text: Any, old: Any, new: Any) -> None:
        if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
            count = len(text) + 1 if old == "" else text.count(old)
            if len(text) + count * (len(new) - len(old)) > self.budget.max_chars:
                raise Refused(f"replace() would build more than {self.budget.max_chars:,} "
                              "characters")

    # --- filters with a size argument --------------------------------------------------

    def bounded_extra_filters(self) -> dict[str, Callable[..., Any]]:
        """envforge's and Backstage's filters that serialise: size-checked before."""
        from envforge.templating.filters import dump

        def bounded_dump(value: Any, spaces: int | str | None = None) -> Any:
            self.check_size(value, "dump input")
            return dump(value, spaces)

        return {"dump": bounded_dump}

    def bounded_js_filters(self) -> dict[str, Callable[..., Any]]:
        """nunjucks' built-in filters (js mode), the ones that build text size-checked."""
        from envforge.templating.nunjucks_filters import NUNJUCKS_FILTERS, whole_number

        filters = dict(NUNJUCKS_FILTERS)

        def replace(value: Any, old: Any, new: Any, max_count: Any = None) -> Any:
            if isinstance(value, str):
                self._check_replace(value, jsvalues.to_string(old), jsvalues.to_string(new))
            return NUNJUCKS_FILTERS["replace"](value, old, new, max_count)

        def join(value: Any, *args: Any) -> str:
            self.check_size(value, "join")
            return str(self.check_size(NUNJUCKS_FILTERS["join"](value, *args), "join"))

        def indent(value: Any, width: Any = 4, first: Any = False) -> str:
            size = whole_number(width, 4)
            self._check_width(size, "indent width")
            if (jsvalues.to_string(value).count("\n") + 1) * size > self.budget.max_chars:
                raise Refused(f"indent would build more than {self.budget.max_chars:,} "
                              "characters")
            return str(NUNJUCKS_FILTERS["indent"](value, width, first))

        def center(value: Any, width: Any = 80) -> str:
            self._check_width(whole_number(width, 80), "center width")
            return str(NUNJUCKS_FILTERS["center"](value, width))

        filters.update({"replace": replace, "join": join, "indent": indent, "center": center})
        return filters

    def _bounded_filters(self) -> dict[str, Callable[..., Any]]:
        def center(value: Any, width: int = 80) -> str:
            self._check_width(int(width), "center width")
            return do_center(value, width)

        def indent(value: Any, width: int | str = 4, first: bool = False,
                   blank: bool = False) -> str:
            size = width if isinstance(width, int) else len(str(width))
            self._check_width(size, "indent width")
            if (str(value).count("\n") + 1) * size > self.budget.max_chars:
                raise Refused("indent would build more than "
                              f"{self.budget.max_chars:,} characters")
            return do_indent(value, width, first, blank)

        def format_(value: Any, *args: Any, **kwargs: Any) -> str:
            self._check_percent_format(str(value))
            return str(self.check_size(do_format(value, *args, **kwargs), "format"))

        def replace(eval_ctx: Any, value: Any, old: Any, new: Any, count: int | None = None
                    ) -> Any:
            self._check_replace(str(value), str(old), str(new))
            return do_replace(eval_ctx, value, old, new, count)
        replace.jinja_pass_arg = do_replace.jinja_pass_arg  # type: ignore[attr-defined]

        def join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
            if isinstance(value, list | tuple | str):
                self.check_size(value, "join")
            return str(self.check_size(do_join(eval_ctx, value, d, attribute), "join"))
        join.jinja_pass_arg = do_join.jinja_pass_arg  # type: ignore[attr-defined]

        def batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
            self._check_width(int(linecount), "batch size")
            return do_batch(value, linecount, fill_with)

        def slice_(value: Any, slices: int, fill_with: Any = None) -> Any:
            self._check_width(int(slices), "slice count")
            return do_slice(value, slices, fill_with)

        def tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> Any:
            if isinstance(value, Undefined):
                return str(value)  # empty, as dump; recorded for `validate`
            self.check_size(value, "tojson input")
            if indent is not None:
                self._check_width(int(indent), "tojson indent")
            return do_tojson(eval_ctx, value, indent)
        tojson.jinja_pass_arg = do_tojson.jinja_pass_arg  # type: ignore[attr-defined]

        def string_(value: Any) -> str:
            self.check_size(value, "string input")
            return str(value)

        return {"center": center, "indent": indent, "format": format_, "replace": replace,
                "join": join, "batch": batch, "slice": slice_, "tojson": tojson,
                "string": string_}


def _too_deep(name: str | None, filename: str | None) -> Exception:
    from jinja2.exceptions import TemplateSyntaxError

    return TemplateSyntaxError("the expression is nested too deeply to evaluate; simplify it",
                               1, name, filename)


#: _js_member's answer for a value that is not a JavaScript value (a secret reference, ...)
_NOT_JS = object()


def _short(n: Any) -> str:
    text = str(n) if not isinstance(n, int) or n.bit_length() < 64 else f"<{n.bit_length()} bits>"
    return text if len(text) <= 20 else text[:17] + "..."


_GROWING = frozenset({"append", "extend", "insert", "update", "setdefault", "add"})

_JS_STRING: dict[str, Callable[[str], Any]] = {
    "toLowerCase": lambda s: s.lower,
    "toUpperCase": lambda s: s.upper,
    "trim": lambda s: s.strip,
    "trimStart": lambda s: s.lstrip,
    "trimEnd": lambda s: s.rstrip,
    "startsWith": lambda s: s.startswith,
    "endsWith": lambda s: s.endswith,
    "includes": lambda s: s.__contains__,
    "indexOf": lambda s: s.find,
}


class _BoundedFormatter(string.Formatter):
    """str.format with the sandbox's attribute rules and a width check on every field."""

    def __init__(self, env: BoundedSandbox) -> None:
        self._env = env
        super().__init__()

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        from _string import formatter_field_name_split  # type: ignore[import-not-found]

        first, rest = formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, i in rest:
            obj = self._env.getattr(obj, i) if is_attr else self._env.getitem(obj, i)
        return obj, first

    def format_field(self, value: Any, format_spec: str) -> Any:
        self._env.check_format_spec(format_spec)
        return super().format_field(value, format_spec)


class _BoundedCodeGeneratorMixin(CodeGenerator):
    """Routes ``~`` and list/dict/tuple literals through the sandbox's size checks."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.literal(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.literal(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":
            super().visit_Tuple(node, frame)
            return
        self.write("environment.literal(")
        super().visit_Tuple(node, frame)
        self.write(")")


class _BoundedCodeGenerator(_BoundedCodeGeneratorMixin):
    """Jinja2 semantics (envforge's own manifests) with the size checks."""


class _BoundedJSCodeGenerator(_BoundedCodeGeneratorMixin, NunjucksCodeGenerator):
    """nunjucks/JavaScript semantics (Backstage templates) with the size checks."""
