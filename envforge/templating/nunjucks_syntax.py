"""nunjucks syntax and evaluation rules on top of Jinja2's lexer, parser and code generator.

Jinja2 parses nearly the same language as nunjucks, but compiles it to Python. Backstage
templates must render as nunjucks compiles them (to JavaScript), so the Backstage sandbox:

- reads ``===`` and ``!==`` as tokens of their own (strict comparison), inside tags only:
  text outside ``${{ }}``/``{% %}`` is never touched;
- reads ``{ key: value }`` object literals with bare keys as nunjucks does (the key is the
  name, not a variable);
- compiles every comparison, ``in``, arithmetic, ``~``, ``not``/``and``/``or`` and every
  condition (``if``, ``elif``, inline ``if``) to the JavaScript semantics of
  :mod:`envforge.templating.jsvalues` (loose ``==``, truthy ``[]``, ``"a" + 1``);
- never folds constants at compile time (Jinja's optimizer would fold them the Python way).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateSyntaxError
from jinja2.lexer import TOKEN_OPERATOR, Lexer, Token, TokenStream, _Rule, operator_re
from jinja2.parser import Parser

from envforge.templating.jsvalues import UNDEFINED, truthy

_JS_OPERATORS = re.compile(r"(===|!==)|" + operator_re.pattern)
_STRICT_TOKENS = {"===": "seq", "!==": "sne"}
_COMPARE = frozenset({"eq", "ne", "lt", "lteq", "gt", "gteq"})


#: the filter every ``{% for %}`` iterates through (see :func:`loop_items`)
LOOP_FILTER = "_nunjucks_loop_items"


def loop_items(value: Any, names: int) -> Any:
    """What nunjucks' ``for`` walks: nothing for a falsy value (null, undefined, ``""``, 0);
    an object's entries for ``for k, v in obj`` (nothing for a single name); a string's
    characters (with ``"0"``, ``"1"``... as keys for two names); an array's items; nothing for
    a number or ``true`` (nunjucks walks ``.length``, or ``for in`` for two names)."""
    if not truthy(value):
        return []
    if isinstance(value, Mapping):
        return list(value.items()) if names >= 2 else []
    if isinstance(value, str):
        return [(str(i), c) for i, c in enumerate(value)] if names >= 2 else list(value)
    if isinstance(value, bool | int | float):
        return []
    if names >= 2 and isinstance(value, list | tuple):
        # nunjucks destructures by index: item[0], item[1]... (undefined past the end)
        return [tuple(item[j] if isinstance(item, list | tuple | str) and j < len(item)
                      else UNDEFINED for j in range(names)) for item in value]
    return value


def _restore_line_ends(stream: Iterable[tuple[int, str, str]], source: str
                       ) -> Iterator[tuple[int, str, str]]:
    """Jinja2's lexer reads every line end as "\n" before it starts; nunjucks keeps "\r\n"
    and "\r". Each text (data) token is found again, in order, in the "\n"-only text and
    given back its original line ends."""
    normalized: list[str] = []
    original: list[str] = []  # what each character of the normalized text was
    i = 0
    while i < len(source):
        if source.startswith("\r\n", i):
            normalized.append("\n")
            original.append("\r\n")
            i += 2
            continue
        ch = source[i]
        normalized.append("\n" if ch == "\r" else ch)
        original.append(ch)
        i += 1
    text = "".join(normalized)
    cursor = 0
    for lineno, token, value in stream:
        if token == "data" and "\n" in value:
            at = text.find(value, cursor)
            if at >= 0:
                cursor = at + len(value)
                value = "".join(original[at:cursor])
        yield lineno, token, value


class NunjucksLexer(Lexer):
    """Jinja2's lexer with ``===`` and ``!==`` operators inside tags."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        for state, rules in self.rules.items():
            self.rules[state] = [
                _Rule(_JS_OPERATORS, rule.tokens, rule.command)
                if rule.pattern is operator_re else rule
                for rule in rules
            ]

    def tokenize(self, source: str, name: str | None = None, filename: str | None = None,
                 state: str | None = None) -> TokenStream:
        stream: Iterable[tuple[int, str, str]] = self.tokeniter(source, name, filename, state)
        if "\r" in source:
            stream = _restore_line_ends(stream, source)
        return TokenStream(self.wrap(stream, name, filename), name, filename)

    def _normalize_newlines(self, value: str) -> str:
        return value  # nunjucks writes "\r\n" and "\r" as they are

    def wrap(self, stream: Iterable[tuple[int, str, str]], name: str | None = None,
             filename: str | None = None) -> Iterator[Token]:
        pending: list[tuple[int, str, str]] = []
        in_raw = False
        for lineno, token, value in stream:
            if token in ("raw_begin", "raw_end"):
                in_raw = token == "raw_begin"
            elif token == "data" and not in_raw and "#}" in value:
                # nunjucks' lexer fails on a comment end outside a comment (Backstage too)
                raise TemplateSyntaxError(
                    "unexpected end of comment: nunjucks (and so Backstage) refuses '#}' "
                    "outside a {# comment #}; write it as ${{ '#}' }}", lineno, name, filename)
            if token == TOKEN_OPERATOR and value in _STRICT_TOKENS:
                yield from super().wrap(pending, name, filename)
                pending = []
                yield Token(lineno, _STRICT_TOKENS[value], value)
            else:
                pending.append((lineno, token, value))
        yield from super().wrap(pending, name, filename)


class NunjucksParser(Parser):
    """Strict comparisons and bare object-literal keys."""

    def parse_compare(self) -> nodes.Expr:
        lineno = self.stream.current.lineno
        expr = self.parse_math1()
        ops = []
        while True:
            token_type = self.stream.current.type
            if token_type in _COMPARE or token_type in ("seq", "sne"):
                next(self.stream)
                ops.append(nodes.Operand(token_type, self.parse_math1()))
            elif self.stream.skip_if("name:in"):
                ops.append(nodes.Operand("in", self.parse_math1()))
            elif self.stream.current.test("name:not") and self.stream.look().test("name:in"):
                self.stream.skip(2)
                ops.append(nodes.Operand("notin", self.parse_math1()))
            else:
                break
            lineno = self.stream.current.lineno
        if not ops:
            return expr
        return nodes.Compare(expr, ops, lineno=lineno)

    def parse_for(self) -> nodes.For:
        node = super().parse_for()
        names = len(node.target.items) if isinstance(node.target, nodes.Tuple) else 1
        node.iter = nodes.Filter(node.iter, LOOP_FILTER, [nodes.Const(names)], [], None, None,
                                 lineno=node.iter.lineno)
        return node

    def parse_dict(self) -> nodes.Dict:
        token = self.stream.expect("lbrace")
        items: list[nodes.Pair] = []
        while self.stream.current.type != "rbrace":
            if items:
                self.stream.expect("comma")
            if self.stream.current.type == "rbrace":
                break
            key = self.parse_expression()
            if isinstance(key, nodes.Name):  # nunjucks: { name: 1 } has the key "name"
                key = nodes.Const(key.name, lineno=key.lineno)
            self.stream.expect("colon")
            value = self.parse_expression()
            items.append(nodes.Pair(key, value, lineno=key.lineno))
        self.stream.expect("rbrace")
        return nodes.Dict(items, lineno=token.lineno)


class NunjucksCodeGenerator(CodeGenerator):
    """Compiles conditions, comparisons and operators to JavaScript semantics (see module)."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("environment.js_compare(")
        self.visit(node.expr, frame)
        self.write(", (")
        for op in node.ops:
            self.write(f"({op.op!r}, ")
            self.visit(op.expr, frame)
            self.write("), ")
        self.write("))")

    def visit_Not(self, node: nodes.UnaryExpr, frame: Frame) -> None:
        self.write("(not environment.js_truthy(")
        self.visit(node.node, frame)
        self.write("))")

    def visit_Neg(self, node: nodes.UnaryExpr, frame: Frame) -> None:
        self.write("environment.js_negate(")
        self.visit(node.node, frame)
        self.write(")")

    def visit_And(self, node: nodes.BinExpr, frame: Frame) -> None:
        self.write("environment.js_and(")
        self.visit(node.left, frame)
        self.write(", lambda: ")
        self.visit(node.right, frame)
        self.write(")")

    def visit_Or(self, node: nodes.BinExpr, frame: Frame) -> None:
        self.write("environment.js_or(")
        self.visit(node.left, frame)
        self.write(", lambda: ")
        self.visit(node.right, frame)
        self.write(")")

    def visit_CondExpr(self, node: nodes.CondExpr, frame: Frame) -> None:
        frame = frame.soft()
        self.write("(")
        self.visit(node.expr1, frame)
        self.write(" if environment.js_truthy(")
        self.visit(node.test, frame)
        self.write(") else ")
        if node.expr2 is not None:
            self.visit(node.expr2, frame)
        else:
            self.write("''")  # nunjucks: an inline if without else gives ""
        self.write(")")

    def visit_If(self, node: nodes.If, frame: Frame) -> None:
        if_frame = frame.soft()
        self.writeline("if environment.js_truthy(", node)
        self.visit(node.test, if_frame)
        self.write("):")
        self.indent()
        self.blockvisit(node.body, if_frame)
        self.outdent()
        for elif_ in node.elif_:
            self.writeline("elif environment.js_truthy(", elif_)
            self.visit(elif_.test, if_frame)
            self.write("):")
            self.indent()
            self.blockvisit(elif_.body, if_frame)
            self.outdent()
        if node.else_:
            self.writeline("else:")
            self.indent()
            self.blockvisit(node.else_, if_frame)
            self.outdent()
