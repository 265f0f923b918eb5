"""Time-to-live strings such as ``48h``, ``3d``, ``90m``, ``1d12h`` and their limits."""

from __future__ import annotations

import re

from envforge.errors import TTLError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TTL = re.compile(r"^(?:\d+[smhdw])+$")
_PART = re.compile(r"(\d+)([smhdw])")


def parse_ttl(text: str, what: str = "--ttl") -> int:
    """Seconds in ``text`` (e.g. ``48h``, ``3d``, ``1d12h``); TTLError if it does not parse."""
    value = str(text).strip().lower()
    if not _TTL.match(value):
        raise TTLError(
            f"{what} {text!r} is not a duration: write a number and a unit (s, m, h, d, w), "
            "e.g. 48h, 3d or 1d12h"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(value))
    if seconds <= 0:
        raise TTLError(f"{what} {text!r} must be longer than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human duration: ``2d3h``, ``45m``, ``12s``."""
    seconds = int(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return "".join(parts) or f"{seconds}s"


def checked_ttl(text: str, max_seconds: int, what: str = "--ttl") -> int:
    """Parsed TTL, refused when it exceeds ``max_seconds`` (ENVFORGE_MAX_TTL)."""
    seconds = parse_ttl(text, what)
    if seconds > max_seconds:
        raise TTLError(
            f"{what} {text!r} exceeds the maximum of {format_duration(max_seconds)}: ask for "
            "less (extend later with 'envforge env extend'), or raise ENVFORGE_MAX_TTL"
        )
    return seconds
