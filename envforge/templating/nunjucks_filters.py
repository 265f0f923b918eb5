"""nunjucks' built-in filters with nunjucks' own semantics, for Backstage rendering.

Jinja2 has filters of the same names that behave differently (``title`` capitalises after a
hyphen, ``join`` writes ``True``/``None``, ``replace`` has no empty-pattern rule, ``indent``
skips blank lines, ``round`` rounds half to even, ``sort`` is case-sensitive, ``length`` of a
number fails). These follow nunjucks 3.2.4's ``filters.js`` (the version Backstage ships) on
JavaScript values; the differential tests (tests/backstage_oracle) hold them to it.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from envforge.templating import jsvalues as js


def _normalize(value: Any, default: Any) -> Any:
    """nunjucks' normalize(): null, undefined and false become the default."""
    if js.is_nullish(value) or value is False:
        return default
    return value


def _text(value: Any, default: str = "") -> str:
    value = _normalize(value, default)
    if not isinstance(value, str):
        raise TypeError(f"{js.to_string(value)!r} is not a string")
    return value


def capitalize(value: Any) -> str:
    text = _text(value).lower()
    return text[:1].upper() + text[1:]


def title(value: Any) -> str:
    """Each space-separated word capitalised, the rest lower case (``demo-service`` ->
    ``Demo-service``)."""
    return " ".join(capitalize(word) for word in _text(value).split(" "))


def lower(value: Any) -> str:
    return _text(value).lower()


def upper(value: Any) -> str:
    return _text(value).upper()


def trim(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"trim: {js.to_string(value)!r} is not a string")
    return value.strip()


def default(value: Any, fallback: Any = js.UNDEFINED, boolean: Any = False) -> Any:
    if js.truthy(boolean):
        return value if js.truthy(value) else fallback
    return fallback if js.is_undefined(value) else value


def replace(value: Any, old: Any, new: Any, max_count: Any = None) -> Any:
    if js.is_number(old):
        old = js.to_string(old)
    elif not isinstance(old, str):
        return value
    if js.is_number(value):
        value = js.to_string(value)
    if not isinstance(value, str):
        return value
    new_text = js.to_string(new)
    if old == "":
        return new_text + new_text.join(value) + new_text
    limit = -1 if max_count is None or js.is_undefined(max_count) else js.to_number(max_count)
    index = value.find(old)
    if limit == 0 or index == -1:
        return value
    out: list[str] = []
    pos = count = 0
    while index > -1 and (limit == -1 or count < limit):
        out.append(value[pos:index] + new_text)
        pos = index + len(old)
        count += 1
        index = value.find(old, pos)
    if pos < len(value):
        out.append(value[pos:])
    return "".join(out)


def join(value: Any, separator: Any = "", attribute: Any = None) -> str:
    items = list(value) if isinstance(value, list | tuple) else value
    if not isinstance(items, list):
        raise TypeError("join: the value is not an array")
    if attribute is not None and not js.is_undefined(attribute):
        items = [_get(v, attribute) for v in items]
    sep = "," if js.is_undefined(separator) else js.to_string(separator)
    return sep.join("" if js.is_nullish(v) else js.to_string(v) for v in items)


def _get(obj: Any, key: Any) -> Any:
    from envforge.templating.jsmembers import MISSING, member

    found = member(obj, key) if not js.is_nullish(obj) else MISSING
    return js.UNDEFINED if found is MISSING else found


def length(value: Any) -> Any:
    value = _normalize(value, "")
    if isinstance(value, Mapping):
        return len(value)
    if isinstance(value, str | list | tuple):
        return len(value)
    return js.UNDEFINED  # a number has no length: nunjucks renders it empty


def first(value: Any) -> Any:
    return value[0] if isinstance(value, str | list | tuple) and len(value) else js.UNDEFINED


def last(value: Any) -> Any:
    return value[-1] if isinstance(value, str | list | tuple) and len(value) else js.UNDEFINED


def reverse(value: Any) -> Any:
    if isinstance(value, str):
        return value[::-1]
    if isinstance(value, list | tuple | range):
        return list(reversed(list(value)))
    return []  # nunjucks maps anything else to an empty array first


def _js_cmp(a: Any, b: Any) -> int:
    if js.less_than(a, b):
        return -1
    if js.less_than(b, a):
        return 1
    return 0


def sort(value: Any, reverse_: Any = False, case_sensitive: Any = False,
         attribute: Any = None) -> list[Any]:
    items = list(value)

    def key_of(item: Any) -> Any:
        x = _get(item, attribute) if attribute is not None else item
        if not js.truthy(case_sensitive) and isinstance(x, str):
            x = x.lower()
        return x

    def cmp(a: Any, b: Any) -> int:
        result = _js_cmp(key_of(a), key_of(b))
        return -result if js.truthy(reverse_) else result
    return sorted(items, key=functools.cmp_to_key(cmp))


def string(value: Any) -> str:
    return js.to_string(value)


def int_(value: Any, fallback: Any = js.UNDEFINED) -> Any:
    text = js.to_string(value).lstrip()
    match = re.match(r"[+-]?\d+", text)
    if not match:
        return fallback
    return int(match.group())


def float_(value: Any, fallback: Any = js.UNDEFINED) -> Any:
    text = js.to_string(value).lstrip()
    match = re.match(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Infinity", text)
    if not match:
        return fallback
    number = float(match.group())
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def whole_number(value: Any, default: int = 0) -> int:
    """A JavaScript number used as a count: NaN and infinities give ``default``."""
    number = js.to_number(value)
    if isinstance(number, float) and (math.isnan(number) or math.isinf(number)):
        return default
    return int(number)


def round_(value: Any, precision: Any = 0, method: Any = "common") -> Any:
    factor = 10 ** whole_number(precision)
    x = js.to_number(value) * factor
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return x
    if method == "ceil":
        result: float = math.ceil(x)
    elif method == "floor":
        result = math.floor(x)
    else:
        result = math.floor(x + 0.5)  # Math.round: halves up
    return js.arithmetic("/", result, factor)


def abs_(value: Any) -> Any:
    return abs(js.to_number(value))


def truncate(value: Any, length_: Any = 255, killwords: Any = False, end: Any = None) -> Any:
    limit = whole_number(length_, 255) if js.truthy(length_) else 255
    normalized = _normalize(value, "")
    if isinstance(normalized, list | tuple) and len(normalized) <= limit:
        return normalized  # nunjucks compares .length first: a short array comes back as is
    text = _text(value)
    if len(text) <= limit:
        return text
    if js.truthy(killwords):
        text = text[:limit]
    else:
        idx = text.rfind(" ", 0, limit + 1)
        text = text[: limit if idx == -1 else idx]
    return text + ("..." if js.is_nullish(end) else js.to_string(end))


def wordcount(value: Any) -> Any:
    words = re.findall(r"[A-Za-z0-9_]+", value) if js.truthy(value) else []
    return len(words) if words else None


def indent(value: Any, width: Any = 4, indent_first: Any = False) -> str:
    text = _text(value)
    if text == "":
        return ""
    spaces = " " * (whole_number(width) if not js.is_undefined(width) else 4)
    lines = text.split("\n")
    return "\n".join(line if i == 0 and not js.truthy(indent_first) else spaces + line
                     for i, line in enumerate(lines))


def center(value: Any, width: Any = 80) -> str:
    text = _text(value)
    size = whole_number(width, 80) if js.truthy(width) else 80
    if len(text) >= size:
        return text
    spaces = size - len(text)
    pre = " " * int(spaces / 2 - spaces % 2)
    post = " " * int(spaces / 2)
    return pre + text + post


def urlencode(value: Any) -> str:
    def encode(x: Any) -> str:
        return quote(js.to_string(x), safe="-_.!~*'()")
    if isinstance(value, str):
        return encode(value)
    pairs = value.items() if isinstance(value, Mapping) else value
    return "&".join(f"{encode(k)}={encode(v)}" for k, v in pairs)


def list_(value: Any) -> list[Any]:
    if isinstance(value, str):
        return list(value)
    if isinstance(value, Mapping):
        return [{"key": k, "value": v} for k, v in value.items()]
    if isinstance(value, list | tuple | range):
        return list(value)
    raise TypeError("list filter: type not iterable")


def sum_(value: Any, attribute: Any = None, start: Any = 0) -> Any:
    total = start
    for item in value:
        total = js.add(total, _get(item, attribute) if attribute is not None else item)
    return total


NUNJUCKS_FILTERS: dict[str, Callable[..., Any]] = {
    "capitalize": capitalize, "title": title, "lower": lower, "upper": upper, "trim": trim,
    "default": default, "d": default, "replace": replace, "join": join, "length": length,
    "first": first, "last": last, "reverse": reverse, "sort": sort, "string": string,
    "int": int_, "float": float_, "round": round_, "abs": abs_, "truncate": truncate,
    "wordcount": wordcount, "indent": indent, "center": center, "urlencode": urlencode,
    "list": list_, "sum": sum_,
}
