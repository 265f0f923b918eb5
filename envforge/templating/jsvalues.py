"""JavaScript value semantics for Backstage rendering: what nunjucks (running on JavaScript) does
with values, so envforge writes the same bytes.

nunjucks compiles template expressions to JavaScript, so its output follows JavaScript's rules,
not Python's: ``true`` not ``True``, ``1`` not ``1.0``, ``a,b`` for a list, ``[object Object]``
for a mapping, ``undefined + "/"`` is ``"undefined/"``, ``[]`` is truthy, ``1 == "1"`` but not
``1 === "1"``. Python values stand for JavaScript ones: None is null, a
:class:`jinja2.Undefined` is undefined, bool/int/float are booleans and numbers, str is a
string, list/tuple an array, any mapping an object.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from jinja2 import ChainableUndefined, Undefined

#: JavaScript's undefined where a filter or method (not a name lookup) gives it
UNDEFINED: Any = ChainableUndefined()


def is_undefined(value: Any) -> bool:
    return isinstance(value, Undefined)


def is_nullish(value: Any) -> bool:
    return value is None or isinstance(value, Undefined)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_object(value: Any) -> bool:
    """An array or an object (compared by identity, truthy, stringified specially)."""
    return isinstance(value, list | tuple | range | Mapping)


# --- ToString ----------------------------------------------------------------------------

def number_to_string(value: float | int) -> str:
    """JavaScript's Number.prototype.toString(): shortest round-trip digits, exponent only
    from 1e21 up or below 1e-6 (``1e-7``, ``1e+21``), integral values without ``.0``."""
    if isinstance(value, int):
        if abs(value) < 10**21:
            return str(value)
        value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits_tuple = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(str(d) for d in digits_tuple.digits)
    exponent = int(digits_tuple.exponent)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped or "0"
    k = len(digits)
    n = exponent + k  # the decimal point sits after n digits
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


def to_string(value: Any) -> str:
    """JavaScript's String(value), as ``"" + value`` gives it."""
    if isinstance(value, str):
        return value
    if isinstance(value, Undefined):
        str(value)  # records the use for `validate`; raises if it was a sandbox refusal
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return number_to_string(value)
    if isinstance(value, list | tuple | range):
        return ",".join("" if is_nullish(v) else to_string(v) for v in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


def to_output(value: Any) -> str:
    """What ``${{ value }}`` writes: nunjucks prints null and undefined as nothing."""
    if isinstance(value, Undefined):
        str(value)
        return ""
    if value is None:
        return ""
    return to_string(value)


# --- ToNumber, truthiness ----------------------------------------------------------------

_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")
_RADIX = re.compile(r"0([xXoObB])([0-9a-fA-F]+)")


def to_number(value: Any) -> float | int:
    if isinstance(value, bool):
        return int(value)
    if is_number(value):
        return value  # type: ignore[no-any-return]
    if value is None:
        return 0
    if isinstance(value, Undefined):
        return math.nan
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0
        if _DECIMAL.fullmatch(text):
            number = float(text)
            return int(number) if number.is_integer() and abs(number) < 2**53 else number
        radix = _RADIX.fullmatch(text)
        if radix:
            base = {"x": 16, "o": 8, "b": 2}[radix.group(1).lower()]
            try:
                return int(radix.group(2), base)
            except ValueError:
                return math.nan
        if text in ("Infinity", "+Infinity"):
            return math.inf
        if text == "-Infinity":
            return -math.inf
        return math.nan
    if isinstance(value, list | tuple | Mapping):
        return to_number(to_string(value))
    return math.nan


def truthy(value: Any) -> bool:
    """JavaScript truthiness: empty arrays and objects are true, NaN and "" are false."""
    if isinstance(value, Undefined) or value is None:
        return False
    if isinstance(value, bool):
        return value
    if is_number(value):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True


# --- operators ---------------------------------------------------------------------------

def _primitive(value: Any) -> Any:
    return to_string(value) if is_object(value) else value


def _number_result(value: float | int) -> float | int:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def add(left: Any, right: Any) -> Any:
    """JavaScript ``+``: a string on either side concatenates, else numbers add."""
    a, b = _primitive(left), _primitive(right)
    if isinstance(a, str) or isinstance(b, str):
        return to_string(a) + to_string(b)
    x, y = to_number(a), to_number(b)
    return _number_result(x + y)


def arithmetic(operator: str, left: Any, right: Any) -> float | int:
    """``-``, ``*``, ``/``, ``//`` (nunjucks: Math.floor(a / b)), ``%`` (sign of the
    dividend), ``**`` (Math.pow) on numbers, as JavaScript computes them."""
    x, y = to_number(_primitive(left)), to_number(_primitive(right))
    if operator == "-":
        return _number_result(x - y)
    if operator == "*":
        if isinstance(x, int) and isinstance(y, int):
            return x * y
        return _number_result(x * y)
    if operator in ("/", "//"):
        if y == 0:
            if x == 0 or math.isnan(x):
                return math.nan
            return math.inf if (x > 0) == (math.copysign(1, y) > 0) else -math.inf
        quotient = x / y
        if operator == "//":
            return quotient if math.isinf(quotient) or math.isnan(quotient) \
                else math.floor(quotient)
        return _number_result(quotient)
    if operator == "%":
        if y == 0 or math.isinf(x) or math.isnan(x) or math.isnan(y):
            return math.nan
        if math.isinf(y):
            return x
        if isinstance(x, int) and isinstance(y, int):
            result = abs(x) % abs(y)
            return -result if x < 0 else result
        return _number_result(math.fmod(x, y))
    if operator == "**":
        try:
            return _number_result(math.pow(x, y))
        except (OverflowError, ValueError):
            return math.inf if x > 0 else math.nan
    raise ValueError(f"unknown operator {operator!r}")


def negate(value: Any) -> float | int:
    return _number_result(-to_number(_primitive(value)))


def strict_equal(left: Any, right: Any) -> bool:
    """``===``: same type and value; arrays and objects only equal to themselves."""
    if isinstance(left, Undefined) or isinstance(right, Undefined):
        return isinstance(left, Undefined) and isinstance(right, Undefined)
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if is_number(left) and is_number(right):
        return bool(left == right)
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    if is_object(left) or is_object(right):
        return left is right
    return bool(left == right)


def loose_equal(left: Any, right: Any) -> bool:
    """``==``: JavaScript's abstract equality (null == undefined, 1 == "1", 0 == false)."""
    if is_nullish(left) or is_nullish(right):
        return is_nullish(left) and is_nullish(right)
    if is_object(left) and is_object(right):
        return left is right
    if isinstance(left, bool):
        return loose_equal(int(left), right)
    if isinstance(right, bool):
        return loose_equal(left, int(right))
    if is_object(left):
        return loose_equal(to_string(left), right)
    if is_object(right):
        return loose_equal(left, to_string(right))
    if is_number(left) and isinstance(right, str):
        return bool(left == to_number(right))
    if isinstance(left, str) and is_number(right):
        return bool(to_number(left) == right)
    return strict_equal(left, right)


def less_than(left: Any, right: Any) -> bool | None:
    """The abstract relational comparison: strings by code unit, else numbers; None when a
    side is NaN (every comparison is then false)."""
    a, b = _primitive(left), _primitive(right)
    if isinstance(a, str) and isinstance(b, str):
        return _utf16(a) < _utf16(b)
    x, y = to_number(a), to_number(b)
    if math.isnan(x) or math.isnan(y):
        return None
    return bool(x < y)


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-be", "surrogatepass")


def contains(container: Any, item: Any) -> bool:
    """nunjucks' ``in``: indexOf for arrays and strings, a key for objects."""
    if isinstance(container, list | tuple):
        return any(strict_equal(v, item) for v in container)
    if isinstance(container, str):
        return to_string(item) in container
    if isinstance(container, Mapping):
        return to_string(item) in container or item in container
    raise TypeError(f'Cannot use "in" operator to search for "{to_string(item)}" in '
                    "unexpected types.")


def compare(operator: str, left: Any, right: Any) -> bool:
    if operator == "seq":
        return strict_equal(left, right)
    if operator == "sne":
        return not strict_equal(left, right)
    if operator == "eq":
        return loose_equal(left, right)
    if operator == "ne":
        return not loose_equal(left, right)
    if operator == "in":
        return contains(right, left)
    if operator == "notin":
        return not contains(right, left)
    if operator == "lt":
        return less_than(left, right) is True
    if operator == "gt":
        return less_than(right, left) is True
    if operator == "lteq":
        return less_than(right, left) is False
    if operator == "gteq":
        return less_than(left, right) is False
    raise ValueError(f"unknown comparison {operator!r}")


# --- JSON.stringify -----------------------------------------------------------------------

def _json_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_SHORT_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def json_stringify(value: Any, indent: str = "",
                   fallback: Callable[[Any], Any] | None = None) -> str | None:
    """JSON.stringify(value, null, indent): None when the value itself is undefined (JSON
    leaves it out), undefined members dropped from objects and null in arrays."""
    return _stringify(value, indent, "", fallback)


def _stringify(value: Any, indent: str, current: str,
               fallback: Callable[[Any], Any] | None) -> str | None:
    if isinstance(value, Undefined) or (callable(value) and not is_object(value)):
        return None
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            return "null"
        return number_to_string(value)
    if isinstance(value, str):
        return _json_string(value)
    inner = current + indent
    if isinstance(value, list | tuple):
        items = [_stringify(v, indent, inner, fallback) or "null" for v in value]
        if not items:
            return "[]"
        if not indent:
            return "[" + ",".join(items) + "]"
        return "[\n" + inner + (",\n" + inner).join(items) + "\n" + current + "]"
    if isinstance(value, Mapping):
        members = []
        for key, member in value.items():
            text = _stringify(member, indent, inner, fallback)
            if text is not None:
                sep = ": " if indent else ":"
                members.append(_json_string(to_string(key)) + sep + text)
        if not members:
            return "{}"
        if not indent:
            return "{" + ",".join(members) + "}"
        return "{\n" + inner + (",\n" + inner).join(members) + "\n" + current + "}"
    if fallback is not None:
        return _stringify(fallback(value), indent, current, None)
    return _json_string(str(value))


def json_indent(spaces: Any) -> str:
    """JSON.stringify's space argument: a number (at most 10) or a string (its first 10)."""
    if isinstance(spaces, bool) or spaces is None or isinstance(spaces, Undefined):
        return ""
    if is_number(spaces):
        return " " * max(0, min(10, int(spaces)))
    if isinstance(spaces, str):
        return spaces[:10]
    return ""


def json_round_trip(value: Any, keep: Callable[[Any], bool] = lambda v: False) -> Any:
    """What JSON.parse(JSON.stringify(value)) gives back (Backstage passes every value through
    it): undefined members dropped (undefined in arrays becomes null), integral numbers stay
    numbers, NaN null. ``keep(v)`` values (envforge's secret references) pass through as is."""
    if keep(value):
        return value
    if isinstance(value, Undefined):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if is_number(value):
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            return None
        return _number_result(value)
    if isinstance(value, list | tuple):
        items = [json_round_trip(v, keep) for v in value]
        return [None if isinstance(v, Undefined) and str(v) == "" else v for v in items]
    if isinstance(value, Mapping):
        out = {}
        for key, member in value.items():
            converted = json_round_trip(member, keep)
            if not isinstance(converted, Undefined) or str(converted) != "":
                out[to_string(key)] = converted
        return out
    return value
