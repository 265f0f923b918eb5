"""Column loops of the high-cardinality fakes: a whole column of plain ASCII values (a block
of a COPY stream) -> their e-mail, phone or hash fakes, with no Python call per value.

Two implementations compute the same bytes: the compiled ``envforge.db.keyed_c.ColumnLoop``
(``keyed_c.c``, built at install when a C compiler is there; about a tenth of the Python cost,
which a 3 M-row clone needs to keep up with a plain ``pg_dump | pg_restore``) and the Python
loops below, the reference and the fallback when the extension is not built.
:func:`column_loop` is the one place that picks. Each value's fake comes from its keyed
BLAKE2b-256 digest under the kind's sub-key, as ``transformers.Keyed`` computes it.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from envforge.db import fakes

if TYPE_CHECKING:
    from envforge.db.keyed_c import ColumnLoop

Loop = Callable[[list[bytes]], list[bytes]]
KINDS = ("email", "phone", "hash")
_ASCII_NON_DIGITS = bytes(c for c in range(128) if not chr(c).isdigit())


def _tables(kind: str) -> tuple[tuple[bytes, ...], ...]:
    """The fakes' pieces a kind picks from (fakes.py keeps them; nothing is copied)."""
    if kind == "email":
        return fakes.EMAIL_FIRSTS, fakes.EMAIL_LASTS, fakes.EMAIL_AT_DOMAINS
    if kind == "phone":
        return fakes.PHONE_PREFIXES, fakes.PHONE_TWO_DIGITS, fakes.PHONE_EXTENSIONS
    return ()


def _compiled_type() -> type[ColumnLoop] | None:
    try:
        from envforge.db.keyed_c import ColumnLoop
    except ImportError:  # not built (no C compiler at install): the Python loops run instead
        return None
    return ColumnLoop


_COMPILED = _compiled_type()
COMPILED = _COMPILED is not None  # whether column_loop gives the compiled loop


def column_loop(kind: str, sub_key: bytes, length: int, limit: int | None) -> Loop:
    """The loop for ``kind`` ('email', 'phone', 'hash'): compiled when the extension is
    built, else Python. ``sub_key``: the kind's BLAKE2b key; ``length``: hex characters a
    hash keeps; ``limit``: the column's max_length (every fake cut to it), or None. Values
    must be non-empty plain ASCII without backslashes (the caller routes others elsewhere)."""
    if _COMPILED is not None:
        return compiled_loop(kind, sub_key, length, limit)
    return python_loop(kind, sub_key, length, limit)


def compiled_loop(kind: str, sub_key: bytes, length: int, limit: int | None) -> Loop:
    """:func:`column_loop`'s compiled side; ImportError when the extension is not built."""
    if _COMPILED is None:
        raise ImportError("envforge.db.keyed_c is not built (no C compiler at install)")
    return _COMPILED(kind, sub_key, _tables(kind), length, limit)


def python_loop(kind: str, sub_key: bytes, length: int, limit: int | None) -> Loop:
    """:func:`column_loop`'s Python side: one loop per column, each fake built from the
    kind's pieces without a call per value (a call costs about as much as the fake)."""
    copy = hashlib.blake2b(key=sub_key, digest_size=32).copy
    from_bytes, hexlify = int.from_bytes, binascii.hexlify
    tables = _tables(kind)

    if kind == "email":
        firsts, lasts, domains = tables
        pairs, nlast = len(firsts) * len(lasts), len(lasts)

        def plain(values: list[bytes]) -> list[bytes]:
            out: list[bytes] = []
            add = out.append
            for raw in values:
                state = copy()
                state.update(raw.strip().lower())
                d = state.digest()
                n = from_bytes(d[:8], "big")  # as fakes.email
                first, last = divmod(n % pairs, nlast)
                add(firsts[first] + lasts[last] + hexlify(d[8:16]) + domains[(n >> 40) % 3])
            return out
    elif kind == "phone":
        prefixes, twos, extensions = tables
        nprefix, drop = len(prefixes), _ASCII_NON_DIGITS

        def plain(values: list[bytes]) -> list[bytes]:
            out: list[bytes] = []
            add = out.append
            for raw in values:
                state = copy()
                state.update(raw.translate(None, drop))
                d = state.digest()  # as fakes.phone
                add(prefixes[from_bytes(d[6:10], "big") % nprefix] + twos[d[10] % 100]
                    + extensions[from_bytes(d[11:14], "big") % 10_000])
            return out
    elif kind == "hash":

        def plain(values: list[bytes]) -> list[bytes]:
            out: list[bytes] = []
            add = out.append
            for raw in values:
                state = copy()
                state.update(raw)
                add(hexlify(state.digest())[:length])
            return out
    else:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")

    if limit is None:
        return plain
    return lambda values: [v[:limit] for v in plain(values)]
