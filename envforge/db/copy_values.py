"""The values of a clone's covered columns on their way through COPY: one memo per column
(repeated values transformed once), the text COPY field codec, and the text batch transform
that touches only covered fields. Binary COPY rows go through copy_binary.py with the same
memos.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from envforge.db import copy_binary
from envforge.db.catalog import Column
from envforge.db.rules import ColumnRule
from envforge.db.transformers import ColumnTransform, ValueTransform
from envforge.errors import CopyFailedError

_NULL = b"\\N"
_UNESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))")
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_NEEDS_ESCAPE = re.compile(r"[\\\n\r\t]")


@dataclass(frozen=True)
class FieldRule:
    index: int  # position in the COPY column list
    column: Column
    rule: ColumnRule



class FieldMemo(dict[Any, Any]):
    """COPY-escaped value -> transformed COPY-escaped value. A dict with ``__missing__`` so a
    repeated value (names, cities, dates) costs one C-level lookup. Bounded: when it fills up
    twice the column is taken as high-cardinality (e-mails) and values are no longer kept, so
    memory stays flat whatever the table size; a high-cardinality column with a column loop
    (``loop``, see transformers.build_ascii_column) is then transformed a block at a time."""

    LIMIT = 32_768
    NULL: bytes | None = _NULL

    def __init__(self, fn: ValueTransform, table: str, field_rule: FieldRule, label: str,
                 loop: ColumnTransform | None = None):
        super().__init__({self.NULL: self.NULL})
        self.fn, self.table, self.field_rule, self.label = fn, table, field_rule, label
        self.loop, self.fills = loop, 0
        self.misses = self.lookups = 0
        self.fast: Callable[[bytes], bytes] | None = None
        if loop is not None:
            self.fast = lambda raw: loop([raw], self._other)[0]

    def __missing__(self, raw: bytes) -> bytes | None:  # None: NULL of a binary column
        self.misses += 1
        encoded: bytes | None
        if self.fast is not None and raw.isascii() and b"\\" not in raw:
            encoded = self.fast(raw)
            if self.fills < 2:
                self._keep(raw, encoded)
            return encoded
        try:
            out = self.fn(self.decode(raw))
            encoded = self.NULL if out is None else self.encode(out)
        except Exception as e:  # the value itself must never reach the message
            raise CopyFailedError(
                f"{self.table}.{self.field_rule.column.name}: transformer "
                f"{self.field_rule.rule.transform!r} failed on a value in {self.label} "
                f"(value withheld): {type(e).__name__}") from None
        if self.fills < 2:
            self._keep(raw, encoded)
        return encoded

    def column(self, values: list[bytes]) -> list[bytes]:
        """One column of a block transformed: through the dict while it pays off, else the
        column loop (high-cardinality columns skip the failed dict lookup and the call for
        every value)."""
        if self.fills >= 2 and self.loop is not None:
            return self.loop(values, self._other)
        out = list(map(self.__getitem__, values))
        self.lookups += len(values)
        if (self.loop is not None and self.misses >= self.LIMIT // 2
                and self.misses * 10 > self.lookups * 9):
            # Nine in ten values so far were new (phone numbers): stop keeping them sooner
            # than two fills would.
            self.fills = 2
            self.clear()
            self[self.NULL] = self.NULL
        return out

    def decode(self, raw: bytes) -> str:
        return decode_text(raw)

    def encode(self, value: str) -> bytes:
        return encode_text(value)

    def _other(self, raw: bytes) -> bytes:
        """What a column loop leaves to the slow path: NULL, non-ASCII, escaped values."""
        if raw == self.NULL:
            return raw
        # None only for a binary column's NULL, which rebuild() takes in a value's place
        return cast(bytes, self.__missing__(raw))

    def _keep(self, raw: bytes, encoded: bytes | None) -> None:
        if len(self) >= self.LIMIT:
            self.fills += 1
            self.clear()
            self[self.NULL] = self.NULL
        self[raw] = encoded


class BinaryMemo(FieldMemo):
    """The memo of a binary COPY column: values are the column's binary form (UTF-8 text, or a
    date's four bytes) and NULL is None (copy_binary.py)."""

    NULL = None

    def __init__(self, fn: ValueTransform, table: str, field_rule: FieldRule, label: str,
                 loop: ColumnTransform | None = None):
        super().__init__(fn, table, field_rule, label, loop)
        self._decode, self._encode = copy_binary.value_codec(field_rule.column)

    def decode(self, raw: bytes) -> str:
        return self._decode(raw)

    def encode(self, value: str) -> bytes:
        return self._encode(value)

    def column(self, values: list[bytes]) -> list[bytes]:
        if None not in values:
            return super().column(values)
        picked = [i for i, v in enumerate(values) if v is not None]  # NULLs stay NULL
        out = list(values)
        for i, new in zip(picked, super().column([values[i] for i in picked]), strict=True):
            out[i] = new
        return out


def transform_batch(data: bytes, memos: list[tuple[int, FieldMemo]],
                     write: Callable[[bytes], None], ncols: int) -> int:
    """Transform complete COPY text lines with C-level loops only (split, slice, map, join).

    Splitting the block on tabs alone leaves one element per inner field and merges each
    row's last field with the next row's first ("last\\nfirst"); inner columns are then a
    plain extended slice, and only covered first/last columns need the merged ones split.
    """
    rows = data.count(b"\n")
    if ncols == 1:
        index, memo = memos[0]
        lines = data.split(b"\n")
        lines.pop()
        write(b"\n".join(memo.column(lines)) + b"\n")
        return rows
    step = ncols - 1
    edge = [(i, m) for i, m in memos if i in (0, step)]
    fields = (b"\n" + data if edge else data).split(b"\t")
    if len(fields) != rows * step + 1:
        raise CopyFailedError(f"unexpected COPY shape: {len(fields)} fields for {rows} rows "
                              f"of {ncols} columns")
    for index, memo in memos:
        if 0 < index < step:
            fields[index::step] = memo.column(fields[index::step])
    if edge:
        split = [e.partition(b"\n") for e in fields[0::step]]
        lasts = [p[0] for p in split]  # lasts[0] is empty (the added newline)
        firsts = [p[2] for p in split]  # firsts[-1] is empty (after the final newline)
        for index, memo in edge:
            if index == 0:
                firsts[:-1] = memo.column(firsts[:-1])
            else:
                lasts[1:] = memo.column(lasts[1:])
        fields[0::step] = map(b"\n".join, zip(lasts, firsts, strict=True))
        write(b"\t".join(fields)[1:])
    else:
        write(b"\t".join(fields))
    return rows


def decode_text(raw: bytes) -> str:
    text = raw.decode("utf-8")
    if "\\" not in text:
        return text
    return _UNESCAPE.sub(_unescape_one, text)


def _unescape_one(match: re.Match[str]) -> str:
    octal, hexa, char = match.groups()
    if octal:
        return chr(int(octal, 8))
    if hexa:
        return chr(int(hexa, 16))
    return _SIMPLE_ESCAPES.get(char, char)


def encode_text(value: str) -> bytes:
    if _NEEDS_ESCAPE.search(value):
        value = (value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
                 .replace("\t", "\\t"))
    return value.encode("utf-8")
