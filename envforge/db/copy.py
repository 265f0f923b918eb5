"""Move one table's rows (or one slice of them) from source to target through COPY streams.

Runs in a worker process with its own two connections: the source side joins the clone's
exported snapshot in a read-only repeatable-read transaction. Tables without rules stream
binary COPY bytes straight through; tables with rules stream text COPY and transform only the
covered fields of each line in flight, so raw values of covered columns never reach the target.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from envforge.db.catalog import Column
from envforge.db.connection import ServerAddress, open_connection, quote_ident, read_only_snapshot
from envforge.db.rules import ColumnRule
from envforge.db.transformers import ValueTransform, build_transform
from envforge.errors import CopyFailedError, EnvforgeError

_BATCH_ROWS = 2000
_NULL = b"\\N"
_UNESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))")
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_NEEDS_ESCAPE = re.compile(r"[\\\n\r\t]")


@dataclass(frozen=True)
class FieldRule:
    index: int  # position in the COPY column list
    column: Column
    rule: ColumnRule


@dataclass(frozen=True)
class CopyTask:
    """One unit of copy work: a physical table, optionally restricted to a slice."""

    table: str  # logical table as users name it (schema.table)
    label: str  # physical table (leaf partition) and slice, for logs and errors
    physical_sql: str
    columns: tuple[str, ...]
    fields: tuple[FieldRule, ...] = ()
    where: str | None = None  # SQL condition (ctid range or subset filter), no user values
    params: tuple[Any, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class CopyResult:
    table: str
    label: str
    rows: int
    bytes: int
    seconds: float


def run_copy_task(
    source: ServerAddress, target: ServerAddress, snapshot_id: str, key: bytes, task: CopyTask
) -> CopyResult:
    """Copy one task; any failure becomes CopyFailedError naming the table (picklable)."""
    started = time.perf_counter()
    try:
        with read_only_snapshot(source, snapshot_id) as src:
            dst = open_connection(target)
            try:
                dst.execute("SET synchronous_commit = off")
                rows, size = _stream(src, dst, key, task)
                dst.commit()
            finally:
                dst.close()
    except CopyFailedError:
        raise
    except (EnvforgeError, psycopg.Error, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CopyFailedError(f"copying {task.label} failed: {reason}") from None
    return CopyResult(task.table, task.label, rows, size, time.perf_counter() - started)


def _stream(src: psycopg.Connection[Any], dst: psycopg.Connection[Any], key: bytes,
            task: CopyTask) -> tuple[int, int]:
    columns = ", ".join(quote_ident(c) for c in task.columns)
    if task.where:
        read_sql = f"COPY (SELECT {columns} FROM {task.physical_sql} WHERE {task.where}) TO STDOUT"
    else:
        read_sql = f"COPY {task.physical_sql} ({columns}) TO STDOUT"
    write_sql = f"COPY {task.physical_sql} ({columns}) FROM STDIN"
    binary = not task.fields
    if binary:
        read_sql += " (FORMAT binary)"
        write_sql += " (FORMAT binary)"
    src_cur, dst_cur = src.cursor(), dst.cursor()
    size = 0
    with src_cur.copy(read_sql, task.params or None) as reader, dst_cur.copy(write_sql) as writer:
        if binary:
            for chunk in reader:
                size += len(chunk)
                writer.write(chunk)
        else:
            size = _transform_stream(reader, writer.write, key, task)
    if src_cur.rowcount != dst_cur.rowcount:
        raise CopyFailedError(f"copying {task.label}: read {src_cur.rowcount} rows but the "
                              f"target took {dst_cur.rowcount}")
    return dst_cur.rowcount, size


def _transform_stream(reader: Any, write: Callable[[bytes], None], key: bytes,
                      task: CopyTask) -> int:
    plan: list[tuple[int, ValueTransform | None, FieldRule]] = [
        (f.index, build_transform(f.rule, f.column, key), f) for f in task.fields
    ]
    active = [(i, fn, f) for i, fn, f in plan if fn is not None]
    size = 0
    batch: list[bytes] = []
    for chunk in reader:  # text COPY: libpq hands over one line per chunk
        line = bytes(chunk)
        size += len(line)
        fields = line[:-1].split(b"\t")
        for index, fn, field_rule in active:
            raw = fields[index]
            if raw == _NULL:
                continue
            try:
                out = fn(_decode(raw))
            except Exception as e:  # the value itself must never reach the message
                raise CopyFailedError(
                    f"{task.table}.{field_rule.column.name}: transformer "
                    f"{field_rule.rule.transform!r} failed on a value in {task.label} "
                    f"(value withheld): {type(e).__name__}") from None
            fields[index] = _NULL if out is None else _encode(out)
        batch.append(b"\t".join(fields))
        if len(batch) >= _BATCH_ROWS:
            write(b"\n".join(batch) + b"\n")
            batch.clear()
    if batch:
        write(b"\n".join(batch) + b"\n")
    return size


def _decode(raw: bytes) -> str:
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


def _encode(value: str) -> bytes:
    if _NEEDS_ESCAPE.search(value):
        value = (value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
                 .replace("\t", "\\t"))
    return value.encode("utf-8")
