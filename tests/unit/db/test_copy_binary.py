"""Binary COPY rows: the compiled splitter and rebuilder, the stream pump around them, the date
codec and which tables may use binary at all."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envforge.db import copy_binary, copyrows_c
from envforge.db.catalog import Column
from envforge.db.copy_binary import date_binary, date_text, pump_rows
from envforge.db.rules import ColumnRule
from envforge.errors import CopyFailedError

HEADER = copy_binary.SIGNATURE + struct.pack("!ii", 0, 0)
Value = bytes | None


def row(*values: Value) -> bytes:
    out = struct.pack("!h", len(values))
    for v in values:
        out += struct.pack("!i", -1) if v is None else struct.pack("!i", len(v)) + v
    return out


def stream(rows: list[tuple[Value, ...]]) -> bytes:
    return HEADER + b"".join(row(*r) for r in rows) + copy_binary.TRAILER


def parse(data: bytes, ncols: int) -> list[tuple[Value, ...]]:
    columns, end, count, ended = copyrows_c.scan(data, len(HEADER), ncols,
                                                tuple(range(ncols)))
    assert ended and end == len(data)
    return list(zip(*columns, strict=True)) if count else []


class Upper:
    """A memo stand-in: column(values) -> values, as copy_values.FieldMemo offers."""

    def column(self, values: list[Value]) -> list[Value]:
        return [None if v is None else v.upper() + b"!" for v in values]


ROWS: list[tuple[Value, ...]] = [
    (b"\x00\x00\x00\x01", b"alice", None),
    (b"\x00\x00\x00\x02", None, b"x" * 300),
    (b"\x00\x00\x00\x03", b"tab\there\nnew\\line", b""),
    (b"\x00\x00\x00\x04", b"", b"z"),
]


def pumped(data: bytes, cut: Callable[[bytes], list[bytes]], memos: list[tuple[int, Upper]],
           ncols: int = 3) -> tuple[int, bytes]:
    out: list[bytes] = []
    rows = pump_rows(iter(cut(data)), out.append, memos, ncols, "public.t")  # type: ignore[arg-type]
    return rows, b"".join(out)


def test_every_split_of_the_stream_gives_the_same_rows() -> None:
    data = stream(ROWS)
    whole = pumped(data, lambda d: [d], [(1, Upper())])
    assert whole[0] == 4
    assert parse(whole[1], 3) == [
        (b"\x00\x00\x00\x01", b"ALICE!", None), (b"\x00\x00\x00\x02", None, b"x" * 300),
        (b"\x00\x00\x00\x03", b"TAB\tHERE\nNEW\\LINE!", b""), (b"\x00\x00\x00\x04", b"!", b"z")]
    for at in range(1, len(data)):
        assert pumped(data, lambda d, at=at: [d[:at], d[at:]], [(1, Upper())]) == whole
    bytewise = pumped(data, lambda d: [d[i:i + 1] for i in range(len(d))], [(1, Upper())])
    assert bytewise == whole


def test_untransformed_stream_passes_through_unchanged() -> None:
    data = stream(ROWS)
    assert pumped(data, lambda d: [d[:7], d[7:40], d[40:]], []) == (4, data)
    assert pumped(stream([]), lambda d: [d], []) == (0, stream([]))


def test_last_columns_and_several_columns() -> None:
    data = stream(ROWS)
    rows, out = pumped(data, lambda d: [d], [(0, Upper()), (2, Upper())])
    assert rows == 4
    assert [r[2] for r in parse(out, 3)] == [None, b"X" * 300 + b"!", b"!", b"Z!"]


@pytest.mark.parametrize("data, message", [
    (HEADER + row(b"a", b"b", b"c"), "ended mid-row"),  # no end marker
    (HEADER + row(b"a", b"b", b"c")[:-1], "ended mid-row"),
    (HEADER + row(b"a", b"b") + copy_binary.TRAILER, "2 fields where 3"),
    (b"PGCOPY\n\xff\r\n\x01" + HEADER[11:] + copy_binary.TRAILER, "no PGCOPY signature"),
    (copy_binary.SIGNATURE + struct.pack("!ii", 1 << 16, 0) + copy_binary.TRAILER,
     "flags this reader does not know"),
    (stream(ROWS) + b"\x00", "after the end"),
    (HEADER + struct.pack("!hi", 3, -2) + copy_binary.TRAILER, "negative length"),
])
def test_bad_streams_are_refused_naming_the_table(data: bytes, message: str) -> None:
    with pytest.raises(CopyFailedError, match=f"public.t.*{message}|{message}"):
        pumped(data, lambda d: [d[:len(d) - 1], d[len(d) - 1:]], [(1, Upper())])


def test_rebuild_checks_its_arguments() -> None:
    data = stream(ROWS)
    start, end = len(HEADER), len(data) - 2
    with pytest.raises(ValueError, match="one value per row"):
        copyrows_c.rebuild(data, start, end, 3, (1,), [[b"x"]])
    with pytest.raises(TypeError, match="bytes or None"):
        copyrows_c.rebuild(data, start, end, 3, (1,), [[1, 2, 3, 4]])
    with pytest.raises(ValueError, match="whole rows"):
        copyrows_c.rebuild(data, start, end - 1, 3, (1,), [[b"x"] * 4])
    with pytest.raises(ValueError, match="ascending"):
        copyrows_c.scan(data, start, 3, (2, 1))
    with pytest.raises(ValueError, match="ascending"):
        copyrows_c.scan(data, start, 3, (3,))
    with pytest.raises(ValueError, match="outside"):
        copyrows_c.scan(data, len(data) + 1, 3, ())
    with pytest.raises(TypeError):
        copyrows_c.scan("text", 0, 3, ())  # type: ignore[arg-type]


@given(st.lists(st.tuples(st.one_of(st.none(), st.binary(max_size=40)),
                          st.one_of(st.none(), st.binary(max_size=40))), max_size=30),
       st.integers(min_value=1, max_value=50))
def test_scan_and_rebuild_round_trip(rows: list[tuple[Value, Value]], block: int) -> None:
    data = stream(rows)  # type: ignore[arg-type]
    out: list[bytes] = []
    count = pump_rows(iter([data[i:i + block] for i in range(0, len(data), block)]), out.append,
                      [(0, Upper())], 2, "t")  # type: ignore[list-item]
    assert count == len(rows)
    assert parse(b"".join(out), 2) == [(None if a is None else a.upper() + b"!", b)
                                       for a, b in rows]


# Dates as PostgreSQL 15 prints them with DateStyle ISO (checked against a server in
# tests/integration/db/test_binary_copy.py), by days since 2000-01-01.
@pytest.mark.parametrize("days, text", [
    (0, "2000-01-01"), (-1, "1999-12-31"), (-730119, "0001-01-01"),
    (-730120, "0001-12-31 BC"), (-2451545, "4714-11-24 BC"), (2**31 - 1, "infinity"),
    (-(2**31), "-infinity"), (2914694, "9980-02-29"), (2921939, "9999-12-31"),
    (2921940, "10000-01-01"), (2145031948, "5874897-12-31"), (-876523, "0401-02-29 BC"),
    (-731887, "0005-02-29 BC"),
])
def test_dates(days: int, text: str) -> None:
    raw = days.to_bytes(4, "big", signed=True)
    assert date_text(raw) == text
    assert date_binary(text) == raw


@given(st.integers(min_value=-2451545, max_value=2145031948))
def test_every_date_round_trips(days: int) -> None:
    raw = days.to_bytes(4, "big", signed=True)
    assert date_binary(date_text(raw)) == raw


def test_date_binary_refuses_what_is_not_an_iso_date() -> None:
    with pytest.raises(ValueError):
        date_binary("January 1 2000")


def col(name: str, base: str, binary_io: bool = True) -> Column:
    return Column(name, base, base, "S", False, False, binary_io=binary_io)


@pytest.mark.parametrize("columns, rules, fits", [
    ((col("a", "int4"), col("b", "text")), ((col("b", "text"), "email"),), True),
    ((col("a", "int4"), col("b", "varchar")), ((col("b", "varchar"), "hash"),), True),
    ((col("a", "int4"), col("d", "date")), ((col("d", "date"), "date_of_birth"),), True),
    ((col("a", "int4"), col("d", "date")), ((col("d", "date"), "noise"),), True),
    ((col("a", "int4"), col("d", "date")), ((col("d", "date"), "redact"),), False),
    ((col("a", "int4"), col("n", "numeric")), ((col("n", "numeric"), "noise"),), False),
    ((col("a", "int4"), col("j", "jsonb")), ((col("j", "jsonb"), "json"),), False),
    ((col("a", "int4"), col("c", "money", binary_io=False)), (), False),
    ((col("a", "int4"),), (), True),
])
def test_which_tables_copy_in_binary(columns: tuple[Column, ...],
                                     rules: tuple[tuple[Column, str], ...], fits: bool) -> None:
    extra = {"noise": {"days": 3, "ratio": 0.1}, "json": {"keys": {"e": "email"}}}
    given_rules = tuple((c, ColumnRule(transform=kind, **extra.get(kind, {})))
                        for c, kind in rules)
    assert copy_binary.binary_fits(columns, given_rules) is fits


def test_without_the_compiled_module_every_table_copies_in_text(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copy_binary, "copyrows_c", None)
    assert not copy_binary.available()
    assert not copy_binary.binary_fits((col("a", "int4"),), ())
