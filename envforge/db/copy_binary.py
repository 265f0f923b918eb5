"""Binary COPY between two servers of one major version: which tables may use it, and how their
rows are read, transformed and written.

PostgreSQL parses and prints every value of a text COPY (timestamps, numbers, dates); in binary
it sends and receives them as they are stored, which takes about a third less of the servers'
CPU on both ends of a clone (docs/benchmarks.md). Walking binary rows costs Python a few
microseconds a field, so rows are split and rebuilt by the compiled ``envforge.db.copyrows_c``;
without it (no C compiler where envforge was installed) every table is copied in text.

Binary is used only where it is exact:
- both servers have the same major version (binary formats may change between majors);
- every copied column's type has binary I/O and carries no type OIDs of its own database
  (built-in base types, arrays of them, enums; not composites, ranges, or arrays of user
  types, whose binary form names OIDs the target does not have): ``Column.binary_io``;
- every transformed column is text-like (the value is its UTF-8 text, no escaping), or a date
  with a transform whose output is an ISO date (date_of_birth, noise) or NULL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date
from types import ModuleType
from typing import Any

from envforge.db.catalog import Column
from envforge.db.rules import ColumnRule
from envforge.errors import CopyFailedError

copyrows_c: ModuleType | None
try:
    from envforge.db import copyrows_c
except ImportError:  # built where a C compiler was present (setup.py); else text COPY only
    copyrows_c = None

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
TRAILER = b"\xff\xff"
_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name"})
_DATE_KINDS = frozenset({"date_of_birth", "noise", "null"})
_POSTGRES_EPOCH = date(2000, 1, 1).toordinal()
_NO_BEGIN, _NO_END = -(2**31), 2**31 - 1  # '-infinity' and 'infinity'
_GREGORIAN_CYCLE_DAYS, _GREGORIAN_CYCLE_YEARS = 146_097, 400  # the calendar repeats
_MAX_ORDINAL = date.max.toordinal()
_ISO_DATE = re.compile(r"(\d{4,})-(\d\d)-(\d\d)( BC)?")


def available() -> bool:
    return copyrows_c is not None


def binary_fits(columns: tuple[Column, ...], rules: tuple[tuple[Column, ColumnRule], ...]
                ) -> bool:
    """Whether a table with these copied columns and these transformed ones copies exactly in
    binary (see the module docstring)."""
    if copyrows_c is None or not all(c.binary_io for c in columns):
        return False
    for column, rule in rules:
        if column.base_type in _TEXT_TYPES:
            continue
        if column.base_type == "date" and rule.transform in _DATE_KINDS:
            continue
        return False
    return True


def value_codec(column: Column) -> tuple[Callable[[bytes], str], Callable[[str], bytes]]:
    """(binary value -> the text a transform takes, its text result -> binary value)."""
    if column.base_type == "date":
        return date_text, date_binary
    return _utf8, _to_utf8


def _utf8(raw: bytes) -> str:
    return raw.decode("utf-8")


def _to_utf8(text: str) -> bytes:
    return text.encode("utf-8")


def date_text(raw: bytes) -> str:
    """A binary date (days since 2000-01-01, big-endian int32) as PostgreSQL prints it with
    DateStyle ISO: 'YYYY-MM-DD', ' BC' after years before 1, or '[-]infinity'. Years outside
    Python's 1-9999 are moved into it by whole 400-year Gregorian cycles and back."""
    days = int.from_bytes(raw, "big", signed=True)
    if days == _NO_BEGIN:
        return "-infinity"
    if days == _NO_END:
        return "infinity"
    ordinal, cycles = _POSTGRES_EPOCH + days, 0
    if ordinal < 1:
        cycles = -((-ordinal) // _GREGORIAN_CYCLE_DAYS + 1)
    elif ordinal > _MAX_ORDINAL:
        cycles = (ordinal - _MAX_ORDINAL) // _GREGORIAN_CYCLE_DAYS + 1
    ordinal -= cycles * _GREGORIAN_CYCLE_DAYS
    day = date.fromordinal(ordinal)
    year = day.year + cycles * _GREGORIAN_CYCLE_YEARS  # astronomical: 0 is 1 BC
    if year >= 1:
        return f"{year:04d}-{day.month:02d}-{day.day:02d}"
    return f"{1 - year:04d}-{day.month:02d}-{day.day:02d} BC"


def date_binary(text: str) -> bytes:
    """The inverse of :func:`date_text` for the texts it makes (a transform's ISO output)."""
    if text in ("infinity", "-infinity"):
        days = _NO_END if text == "infinity" else _NO_BEGIN
        return days.to_bytes(4, "big", signed=True)
    match = _ISO_DATE.fullmatch(text)
    if match is None:
        raise ValueError("not an ISO date")
    year = int(match.group(1))
    if match.group(4):
        year = 1 - year
    cycles = 0
    if year < 1:
        cycles = -((1 - year) // _GREGORIAN_CYCLE_YEARS + 1)
    elif year > date.max.year:
        cycles = (year - date.max.year) // _GREGORIAN_CYCLE_YEARS + 1
    year -= cycles * _GREGORIAN_CYCLE_YEARS
    ordinal = date(year, int(match.group(2)), int(match.group(3))).toordinal()
    days = ordinal + cycles * _GREGORIAN_CYCLE_DAYS - _POSTGRES_EPOCH
    return days.to_bytes(4, "big", signed=True)


def header_end(data: bytes) -> int | None:
    """Where the rows start after a binary COPY header, None while the header is incomplete;
    CopyFailedError when ``data`` is not a binary COPY stream this reader understands."""
    if len(data) < len(SIGNATURE) + 8:
        return None
    if not data.startswith(SIGNATURE):
        raise CopyFailedError("the source's binary COPY stream has no PGCOPY signature")
    flags = int.from_bytes(data[11:15], "big")
    if flags & 0x0001FFFF:  # bit 16: OIDs included; bits 0-15: flags a reader must know
        raise CopyFailedError("the source's binary COPY stream has flags this reader does not "
                              "know; set ENVFORGE_DB_BINARY_COPY=false to copy in text")
    end = len(SIGNATURE) + 8 + int.from_bytes(data[15:19], "big")
    return end if len(data) >= end else None


Memo = Any  # copy_values.FieldMemo: column(values) -> values


def pump_rows(blocks: Iterator[bytes], write: Callable[[bytes], None],
              memos: list[tuple[int, Memo]], ncols: int, label: str) -> int:
    """Copy one binary COPY stream from ``blocks`` to ``write``, the columns named in ``memos``
    (index, memo) transformed; the rows copied. The header and the end marker are passed on
    as they came."""
    assert copyrows_c is not None
    wanted = tuple(index for index, _ in memos)
    rows, start, ended = 0, -1, False
    pending = b""
    for block in blocks:
        data = pending + block if pending else block
        if start < 0:
            head = header_end(data)
            if head is None:
                pending = data
                continue
            write(data[:head])
            start = head
        if ended:
            raise CopyFailedError(f"copying {label}: data after the end of the COPY stream")
        try:
            columns, end, count, ended = copyrows_c.scan(data, start, ncols, wanted)
            rows_end = end - len(TRAILER) if ended else end
            if count:
                if memos:
                    new = [memo.column(values) for (_, memo), values in zip(memos, columns,
                                                                           strict=True)]
                    write(copyrows_c.rebuild(data, start, rows_end, ncols, wanted, new))
                else:
                    write(data[start:rows_end])
        except ValueError as e:
            raise CopyFailedError(f"copying {label}: {e}") from None
        rows += count
        pending, start = data[end:], 0
        if ended:
            write(TRAILER)
    if not ended or pending:
        raise CopyFailedError(f"copying {label}: the source stream ended mid-row")
    return rows
