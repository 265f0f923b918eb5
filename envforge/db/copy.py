"""Move one table's rows (or one slice of them) from source to target through COPY streams.

Runs in a worker process with its own two connections: the source side joins the clone's
exported snapshot in a read-only repeatable-read transaction. Rows stream in binary COPY where
that is exact (copy_binary.py), else in text; either way only the covered fields of each row are
transformed in flight (copy_values.py), so raw values of covered columns never reach the target.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.copy import QueuedLibpqWriter

from envforge.db import copy_binary
from envforge.db.connection import ServerAddress, open_connection
from envforge.db.copy_source import copy_blocks
from envforge.db.copy_values import BinaryMemo, FieldMemo, FieldRule, transform_batch
from envforge.db.identifiers import identifier, identifier_text
from envforge.db.transformers import build_ascii_column, build_transform
from envforge.errors import CopyFailedError, EnvforgeError

__all__ = ["CopyResult", "CopyTask", "FieldRule", "run_copy_task", "run_copy_tasks_shared",
           "warm_up"]


@dataclass(frozen=True)
class CopyTask:
    """One unit of copy work: a physical table, optionally restricted to a slice."""

    table: str  # logical table as users name it (schema.table)
    label: str  # physical table (leaf partition) and slice, for logs and errors
    physical_sql: str
    columns: tuple[str, ...]
    fields: tuple[FieldRule, ...] = ()
    where: str | None = None  # SQL condition (ctid range or subset ctids), no user values
    size_bytes: int = 0  # estimated, for scheduling
    # Unique-key collision resolutions (kind, resolution id, attempt); see collisions.py.
    resolutions: tuple[tuple[str, bytes, int], ...] = ()
    binary: bool = False  # binary COPY on both ends (copy_binary.py decides where it is exact)


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
        dst = open_connection(target)
        try:
            dst.execute("SET synchronous_commit = off")
            dst.execute("SET client_encoding = 'UTF8'")  # as the source stream (copy_source)
            rows, size = _stream(source, snapshot_id, dst, key, task)
            dst.commit()
        finally:
            dst.close()
    except CopyFailedError:
        raise
    except (EnvforgeError, psycopg.Error, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CopyFailedError(f"copying {task.label} failed: {reason}") from None
    return CopyResult(task.table, task.label, rows, size, time.perf_counter() - started)


def warm_up() -> None:
    """Nothing: submitted to a fresh worker process so that it imports this module (and
    envforge's transformers with it) before the first real task arrives."""


def run_copy_tasks_shared(src: psycopg.Connection[Any], target: ServerAddress, key: bytes,
                          tasks: list[CopyTask], dst: psycopg.Connection[Any] | None = None
                          ) -> Iterator[CopyResult]:
    """Copy small tasks one after another over two connections shared by all of them: ``src``
    already reads the clone's snapshot (the clone's own snapshot connection), and one target
    connection (``dst``, an autocommit session of the caller's, else one opened here) commits
    once at the end. A task of a few rows then costs a COPY round trip instead of a psql
    process and two new sessions (Pagila has 70 tasks, most tiny)."""
    if not tasks:
        return
    if dst is not None:
        with dst.transaction():
            yield from _copy_tasks_over(src, dst, key, tasks)
        return
    own = open_connection(target)
    try:
        own.execute("SET synchronous_commit = off")
        own.execute("SET client_encoding = 'UTF8'")
        yield from _copy_tasks_over(src, own, key, tasks)
        own.commit()
    finally:
        own.close()


def _copy_tasks_over(src: psycopg.Connection[Any], dst: psycopg.Connection[Any], key: bytes,
                     tasks: list[CopyTask]) -> Iterator[CopyResult]:
    for task in tasks:
        started = time.perf_counter()
        try:
            with _blocks_from(src, _read_sql(task), task.label) as blocks:
                rows, size = _pump(blocks, dst, key, task, queued=False)
        except CopyFailedError:
            raise
        except (EnvforgeError, psycopg.Error, OSError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CopyFailedError(f"copying {task.label} failed: {reason}") from None
        yield CopyResult(task.table, task.label, rows, size, time.perf_counter() - started)


@contextmanager
def _blocks_from(src: psycopg.Connection[Any], read_sql: str,
                 label: str) -> Iterator[Iterator[bytes]]:
    """COPY TO STDOUT on ``src``, read with libpq's blocking PQgetCopyData: one C call per
    row, where psycopg's copy iterator spends about 20 us of Python per row (most of a
    Pagila-sized clone's copy time). The whole result is consumed before ``src`` is used
    again, under its lock, so psycopg's view of the connection stays true."""
    with src.lock:
        pgconn = src.pgconn
        pgconn.send_query(read_sql.encode())
        started = pgconn.get_result()
        if started is None or started.status != pq.ExecStatus.COPY_OUT:
            message = _result_error(pgconn, started)
            _drain(pgconn)
            raise CopyFailedError(f"copying {label} failed: {message}")

        def blocks() -> Iterator[bytes]:
            batch: list[bytes] = []
            size = 0
            while True:
                nbytes, data = pgconn.get_copy_data(0)
                if nbytes < 0:
                    break
                batch.append(bytes(data))
                size += nbytes
                if size >= 1 << 20:
                    yield b"".join(batch)
                    batch, size = [], 0
            if batch:
                yield b"".join(batch)
            finished = pgconn.get_result()
            if finished is None or finished.status != pq.ExecStatus.COMMAND_OK:
                message = _result_error(pgconn, finished)
                _drain(pgconn)
                raise CopyFailedError(f"copying {label} failed: {message}")
            _drain(pgconn)

        stream = blocks()
        try:
            yield stream
        finally:
            try:  # an early exit still reads the stream to its end (the connection is shared)
                for _ in stream:
                    pass
            except CopyFailedError:
                pass  # the error that ended the task early is the one to report


def _result_error(pgconn: Any, result: Any) -> str:
    raw = (result.error_message if result is not None else b"") or pgconn.error_message
    text = raw.decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else "the source connection failed"


def _drain(pgconn: Any) -> None:
    while pgconn.get_result() is not None:
        pass


def _read_sql(task: CopyTask) -> str:
    # Text (it may go to psql), quoted by psycopg.
    columns = ", ".join(identifier_text(c) for c in task.columns)
    binary = " (FORMAT binary)" if task.binary else ""
    if task.where:
        return (f"COPY (SELECT {columns} FROM {task.physical_sql} WHERE {task.where}) "
                f"TO STDOUT{binary}")
    return f"COPY {task.physical_sql} ({columns}) TO STDOUT{binary}"


def _stream(source: ServerAddress, snapshot_id: str, dst: psycopg.Connection[Any], key: bytes,
            task: CopyTask) -> tuple[int, int]:
    with copy_blocks(source, snapshot_id, _read_sql(task), task.label) as blocks:
        return _pump(blocks, dst, key, task)


def _pump(blocks: Iterator[bytes], dst: psycopg.Connection[Any], key: bytes,
          task: CopyTask, *, queued: bool = True) -> tuple[int, int]:
    """Blocks into ``COPY ... FROM STDIN``; ``queued``: through a writer thread (large tasks:
    the target is fed while the next block is transformed; small ones would pay more for
    starting the thread than they gain)."""
    write_sql = sql.SQL("COPY {} ({}) FROM STDIN{}").format(
        sql.SQL(task.physical_sql), sql.SQL(", ").join(map(identifier, task.columns)),
        sql.SQL(" (FORMAT binary)" if task.binary else ""))
    memos = _memos(key, task)
    rows = size = 0
    dst_cur = dst.cursor()
    with dst_cur.copy(write_sql, writer=_BoundedQueuedWriter(dst_cur) if queued
                      else None) as writer:
        if task.binary:
            def counted() -> Iterator[bytes]:
                nonlocal size
                for block in blocks:
                    size += len(block)
                    yield block

            rows = copy_binary.pump_rows(counted(), writer.write, memos, len(task.columns),
                                         task.label)
        elif not memos:  # straight through: COPY text escapes newlines, so one per row
            for block in blocks:
                rows += block.count(b"\n")
                size += len(block)
                writer.write(block)
        else:
            rest = b""
            for block in blocks:
                size += len(block)
                data = rest + block if rest else block
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                if cut:
                    rows += transform_batch(data[:cut], memos, writer.write,
                                            len(task.columns))
            if rest:
                raise CopyFailedError(f"copying {task.label}: the source stream ended mid-row")
    if rows != dst_cur.rowcount:
        raise CopyFailedError(f"copying {task.label}: read {rows} rows but the target took "
                              f"{dst_cur.rowcount}")
    return rows, size


class _BoundedQueuedWriter(QueuedLibpqWriter):
    """psycopg's writer thread (the target's socket is fed while this thread transforms the
    next block) with a short queue: at most about 4 MB waits, so memory stays flat when the
    target is slower than the transforms (psycopg's own queue holds up to 128 MB)."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        super().__init__(cursor)
        self._queue = type(self._queue)(maxsize=32)


_MEMO_CACHE: dict[tuple[str, ...], FieldMemo] = {}
_MEMO_CACHE_SIZE = 32


def _memos(key: bytes, task: CopyTask) -> list[tuple[int, FieldMemo]]:
    """Memos per covered column, kept across the tasks (slices) a process runs for one table
    and key, so repeated values are transformed once per process rather than per slice."""
    fingerprint = hashlib.sha256(key + repr((task.resolutions, task.binary)).encode()
                                 ).hexdigest()
    resolved: dict[str, dict[bytes, int]] = {}
    for kind, ident, attempt in task.resolutions:
        resolved.setdefault(kind, {})[ident] = attempt
    memos: list[tuple[int, FieldMemo]] = []
    for f in task.fields:
        cache_key = (task.table, f.column.name, f.rule.model_dump_json(),
                     str(f.column.max_length), fingerprint)
        memo = _MEMO_CACHE.get(cache_key)
        if memo is None:
            kind_resolved = resolved.get(f.rule.transform)
            fn = build_transform(f.rule, f.column, key, kind_resolved)
            if fn is None:
                continue
            memo_type = BinaryMemo if task.binary else FieldMemo
            memo = memo_type(fn, task.table, f, task.label, None if kind_resolved else
                             build_ascii_column(f.rule, f.column, key))
            if f.column.unique:
                memo.fills = 2  # every value differs: keeping them would only cost memory
            if len(_MEMO_CACHE) >= _MEMO_CACHE_SIZE:
                _MEMO_CACHE.clear()
            _MEMO_CACHE[cache_key] = memo
        memo.label = task.label
        memos.append((f.index, memo))
    return memos

