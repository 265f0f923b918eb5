"""Which skeleton entries fetch:template's ``copyWithoutTemplating``/``copyWithoutRender`` globs
select, as Backstage's globby (fast-glob) selects them.

Backstage lists the skeleton's files and folders and takes the entries its patterns match
exactly (``dot: true``, no symbolic links followed): ``*`` and ``?`` stay within one path
segment, ``**`` spans segments, ``{a,b}`` and ``[...]`` as in glob; a leading ``./`` is
ignored; a pattern that names a folder stands for everything below it (globby's
``expandDirectories``); a ``!pattern`` takes entries out again. The differential tests compare
this with globby itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path


def _brace_alternatives(pattern: str) -> list[str]:
    """``a{b,c}d`` -> ``abd``, ``acd`` (nested braces expanded one level at a time)."""
    depth = 0
    start = -1
    for i, ch in enumerate(pattern):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                body = pattern[start + 1: i]
                parts, level, last = [], 0, 0
                for j, c in enumerate(body):
                    if c == "{":
                        level += 1
                    elif c == "}":
                        level -= 1
                    elif c == "," and level == 0:
                        parts.append(body[last:j])
                        last = j + 1
                parts.append(body[last:])
                if len(parts) == 1:
                    continue
                head, tail = pattern[:start], pattern[i + 1:]
                return [alt for p in parts for alt in _brace_alternatives(head + p + tail)]
    return [pattern]


def _to_regex(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1: end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _normalise(pattern: str) -> str:
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern.rstrip("/") if pattern not in ("/", "") else pattern


def compile_globs(patterns: Iterable[str], root: Path) -> tuple[re.Pattern[str], ...]:
    """(include, exclude) regular expressions over entry paths relative to ``root``."""
    include: list[str] = []
    exclude: list[str] = []
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = _normalise(raw[1:] if negated else raw)
        if not pattern:
            continue
        for alternative in _brace_alternatives(pattern):
            regexes = [_to_regex(alternative)]
            if not any(c in alternative for c in "*?[") and (root / alternative).is_dir():
                regexes.append(_to_regex(alternative + "/**"))
            (exclude if negated else include).extend(regexes)
    never = "(?!)"
    return (re.compile("(?:" + "|".join(include or [never]) + r")\Z", re.DOTALL),
            re.compile("(?:" + "|".join(exclude or [never]) + r")\Z", re.DOTALL))


def matches(compiled: tuple[re.Pattern[str], ...], rel: str) -> bool:
    """Whether the entry ``rel`` (a file or folder, ``/``-separated) is selected."""
    include, exclude = compiled
    return bool(include.match(rel)) and not exclude.match(rel)
