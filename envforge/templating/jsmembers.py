"""Member access the way nunjucks' ``memberLookup`` does it on JavaScript values.

``obj.key`` and ``obj[key]`` are one thing in JavaScript: an object's property (keys are
strings, so ``obj[1]`` reads ``"1"``), an array's or string's index (``arr[-1]`` is undefined,
not the last item), ``.length``, or a method of the String, Array or Number prototype (the
common, side-effect-free ones: ``.replaceAll()``, ``.split()``, ``.includes()``, ...). Anything
else is undefined. Python's own methods (``.upper()``, ``.items()``) do not exist, as in
Backstage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from envforge.templating import jsvalues as js

#: returned for a member that does not exist; the sandbox turns it into its undefined
MISSING = object()


def _index(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, float) and key.is_integer():
        return int(key)
    if isinstance(key, str) and key.isdigit() and (key == "0" or not key.startswith("0")):
        return int(key)
    return None


def member(obj: Any, key: Any) -> Any:
    """``obj[key]``; :data:`MISSING` when JavaScript would give undefined."""
    if isinstance(obj, Mapping):
        name = js.to_string(key)
        if name in obj:
            return obj[name]
        if not isinstance(key, str) and key in obj:
            return obj[key]
        return MISSING
    if isinstance(obj, str | list | tuple):
        index = _index(key)
        if index is not None:
            return obj[index] if 0 <= index < len(obj) else MISSING
        if key == "length":
            return len(obj)
        methods = _STRING_METHODS if isinstance(obj, str) else _ARRAY_METHODS
        if isinstance(key, str) and key in methods:
            method = methods[key]
            return lambda *args: method(obj, *args)
        return MISSING
    if js.is_number(obj) and key in _NUMBER_METHODS:
        method = _NUMBER_METHODS[key]
        return lambda *args: method(obj, *args)
    return MISSING


# --- String.prototype ----------------------------------------------------------------------

def _position(value: Any, default: int, length: int) -> int:
    if js.is_nullish(value):
        return default
    number = js.to_number(value)
    if math.isnan(number):
        return 0
    if math.isinf(number):
        return length if number > 0 else 0
    return int(number)


def _relative(value: Any, default: int, length: int) -> int:
    n = _position(value, default, length)
    return max(length + n, 0) if n < 0 else min(n, length)


def _replace(s: str, old: Any, new: Any, every: bool) -> str:
    pattern, replacement = js.to_string(old), js.to_string(new)
    if every:
        if pattern == "":
            return replacement + replacement.join(s) + replacement if s else replacement
        return s.replace(pattern, replacement)
    return s.replace(pattern, replacement, 1)


def _split(s: str, sep: Any = None, limit: Any = None) -> list[str]:
    if js.is_undefined(sep) or (sep is None and limit is None):
        parts = [s]
    else:
        text = js.to_string(sep)
        parts = list(s) if text == "" else s.split(text)
    if limit is not None and not js.is_nullish(limit):
        parts = parts[: max(0, int(js.to_number(limit)))]
    return parts


def _substring(s: str, start: Any, end: Any = None) -> str:
    a = min(max(_position(start, 0, len(s)), 0), len(s))
    b = min(max(_position(end, len(s), len(s)), 0), len(s))
    return s[min(a, b): max(a, b)]


def _pad(s: str, length: Any, fill: Any, start: bool) -> str:
    target = int(js.to_number(length))
    filler = " " if js.is_nullish(fill) else js.to_string(fill)
    if target <= len(s) or filler == "":
        return s
    if target > 100_000:
        raise ValueError("padStart/padEnd: at most 100,000 characters")
    pad = (filler * (target // len(filler) + 1))[: target - len(s)]
    return pad + s if start else s + pad


def _index_of(s: str, sub: Any, start: Any = None) -> int:
    return s.find(js.to_string(sub), _relative(start, 0, len(s)) if start is not None else 0)


def _char_at(s: str, i: Any = 0) -> str:
    n = _position(i, 0, len(s))
    return s[n] if 0 <= n < len(s) else ""


_STRING_METHODS: dict[str, Callable[..., Any]] = {
    "toLowerCase": lambda s: s.lower(),
    "toUpperCase": lambda s: s.upper(),
    "trim": lambda s: s.strip(),
    "trimStart": lambda s: s.lstrip(),
    "trimEnd": lambda s: s.rstrip(),
    "startsWith": lambda s, p, i=0: s.startswith(js.to_string(p), _position(i, 0, len(s))),
    "endsWith": lambda s, p, i=None: s[: _position(i, len(s), len(s))].endswith(
        js.to_string(p)),
    "includes": lambda s, p, i=0: js.to_string(p) in s[_position(i, 0, len(s)):],
    "indexOf": _index_of,
    "lastIndexOf": lambda s, p: s.rfind(js.to_string(p)),
    "replace": lambda s, old, new: _replace(s, old, new, every=False),
    "replaceAll": lambda s, old, new: _replace(s, old, new, every=True),
    "split": _split,
    "slice": lambda s, a=0, b=None: s[_relative(a, 0, len(s)): _relative(b, len(s), len(s))],
    "substring": _substring,
    "charAt": _char_at,
    "concat": lambda s, *parts: s + "".join(js.to_string(p) for p in parts),
    "padStart": lambda s, n, f=None: _pad(s, n, f, start=True),
    "padEnd": lambda s, n, f=None: _pad(s, n, f, start=False),
    "toString": lambda s: s,
}


# --- Array.prototype -----------------------------------------------------------------------

def _join(items: list[Any] | tuple[Any, ...], sep: Any = ",") -> str:
    text = "," if js.is_undefined(sep) else js.to_string(sep)
    return text.join("" if js.is_nullish(v) else js.to_string(v) for v in items)


_ARRAY_METHODS: dict[str, Callable[..., Any]] = {
    "join": _join,
    "includes": lambda a, v: any(js.strict_equal(x, v) or (
        isinstance(x, float) and isinstance(v, float) and math.isnan(x) and math.isnan(v))
        for x in a),
    "indexOf": lambda a, v: next((i for i, x in enumerate(a) if js.strict_equal(x, v)), -1),
    "slice": lambda a, s=0, e=None: list(a[_relative(s, 0, len(a)): _relative(e, len(a),
                                                                                 len(a))]),
    "concat": lambda a, *more: list(a) + [
        x for m in more for x in (m if isinstance(m, list | tuple) else [m])],
    "toString": lambda a: js.to_string(a),
}

_NUMBER_METHODS: dict[str, Callable[..., Any]] = {
    "toString": lambda n: js.number_to_string(n),
    "toFixed": lambda n, d=0: f"{n:.{int(js.to_number(d))}f}",
}
