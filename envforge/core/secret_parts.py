"""Parts of a secret: what is left of a value a template cut (``truncate``, a slice, ``first``)
or that a message quotes only in part.

Finding a whole value and its reshaped forms is not enough: ``${{ secrets.TOKEN | truncate(20)
}}`` renders 17 of the token's characters into a file bound for Git. Any run of
:data:`PART_LENGTH` characters of a secret's random-looking stretches is looked for as well, as
is, reversed and in any case. Only stretches that look random count: the value is split at
whitespace and URL punctuation (a connection string's scheme, user and host are not secret;
its password is), and a part must mix at least two of lower case, upper case and digits and
have several distinct characters, so ``postgresql`` or ``production`` never match while
``9f2c7A1b3e4d`` does. A stretch longer than :data:`FULL_WINDOW_LIMIT` characters (a key) is
sampled every :data:`PART_LENGTH` characters, so any part of it ``2 * PART_LENGTH - 1`` long
or longer is found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: characters in a row of a secret that count as a part of it
PART_LENGTH = 12
#: stretches up to this long contribute every window; longer ones every PART_LENGTH-th
FULL_WINDOW_LIMIT = 256
#: a part must have at least this many distinct characters
MIN_DISTINCT = 6
#: at most this many parts per value (a huge value is sampled more sparsely)
MAX_PARTS_PER_VALUE = 4096
_SPLIT = re.compile(r"[\s:/@?&=#;,\"'<>()\[\]{}|\\]+")


def _looks_random(part: str) -> bool:
    classes = (any(c.islower() for c in part) + any(c.isupper() for c in part)
               + any(c.isdigit() for c in part))
    return classes >= 2 and len(set(part)) >= MIN_DISTINCT


def secret_parts(value: str) -> frozenset[str]:
    """The lower-cased parts of ``value`` (and of it reversed) a text must not contain."""
    parts: set[str] = set()
    for stretch in _SPLIT.split(value):
        if len(stretch) < PART_LENGTH or len(stretch) == len(value) == PART_LENGTH:
            continue
        step = 1 if len(stretch) <= FULL_WINDOW_LIMIT else PART_LENGTH
        for text in (stretch, stretch[::-1]):
            for start in range(0, len(text) - PART_LENGTH + 1, step):
                window = text[start:start + PART_LENGTH]
                if _looks_random(window):
                    parts.add(window.lower())
                if len(parts) >= MAX_PARTS_PER_VALUE:
                    return frozenset(parts)
    return frozenset(parts)


def parts_of(values: Iterable[str]) -> frozenset[str]:
    """The parts of every value, as one set."""
    found: set[str] = set()
    for value in values:
        if value:
            found |= secret_parts(value)
    return frozenset(found)


def _lowered(text: str) -> str:
    """``text`` lower-cased character by character, keeping every index where it was."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def part_spans(text: str, parts: frozenset[str]) -> list[tuple[int, int]]:
    """(start, end) of every stretch of ``text`` made of parts, overlapping ones merged."""
    if not parts or len(text) < PART_LENGTH:
        return []
    lowered = _lowered(text)
    starts: list[int] = []
    if len(text) <= 64 * len(parts):  # short text: look each of its windows up
        starts = [i for i in range(len(text) - PART_LENGTH + 1)
                  if lowered[i:i + PART_LENGTH] in parts]
    else:  # long text, few parts: search for each part
        for part in parts:
            at = lowered.find(part)
            while at != -1:
                starts.append(at)
                at = lowered.find(part, at + 1)
        starts.sort()
    spans: list[tuple[int, int]] = []
    for start in starts:
        end = start + PART_LENGTH
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def holds_part(text: str, parts: frozenset[str]) -> bool:
    """Whether ``text`` holds any part."""
    if not parts or len(text) < PART_LENGTH:
        return False
    if len(text) > 64 * len(parts):
        lowered = _lowered(text)
        return any(part in lowered for part in parts)
    return bool(part_spans(text, parts))


def mask_parts(text: str, parts: frozenset[str], mask: str) -> str:
    """``text`` with every stretch made of parts replaced by ``mask``."""
    spans = part_spans(text, parts)
    if not spans:
        return text
    pieces: list[str] = []
    last = 0
    for start, end in spans:
        pieces += [text[last:start], mask]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)
