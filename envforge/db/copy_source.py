"""Read one COPY ... TO STDOUT stream from the source, in large blocks, inside the snapshot.

The default reader is ``psql`` in a subprocess: it joins the exported snapshot in a read-only
repeatable-read transaction and writes COPY text to a pipe that Python reads 1 MB at a time,
so the copy worker pays no per-row Python cost for reading (psycopg hands COPY data over one
row per call, about 1 us of Python per row). When psql is not installed, or
``ENVFORGE_DB_READER=psycopg``, psycopg 3 reads the same stream and rows are grouped into
blocks in Python.
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from envforge.db.connection import ServerAddress, read_only_snapshot
from envforge.db.identifiers import literal_text
from envforge.db.schema import pg_tool
from envforge.errors import ConfigurationError, CopyFailedError

BLOCK_BYTES = 1 << 20


@contextmanager
def copy_blocks(source: ServerAddress, snapshot_id: str, copy_sql: str,
                label: str) -> Iterator[Iterator[bytes]]:
    """``with copy_blocks(...) as blocks: for block in blocks: ...``; raises CopyFailedError
    naming ``label`` if the source side fails (also when it fails mid-stream)."""
    psql: str | None = None
    from envforge.settings import load_settings  # not at import: `envforge db` starts fast

    if load_settings().db.reader == "psql":  # ENVFORGE_DB_READER
        try:
            psql = pg_tool("psql")
        except ConfigurationError:
            psql = None
    if psql is None:
        with _psycopg_blocks(source, snapshot_id, copy_sql) as blocks:
            yield blocks
        return
    with _psql_blocks(psql, source, snapshot_id, copy_sql, label) as blocks:
        yield blocks


@contextmanager
def _psql_blocks(psql: str, source: ServerAddress, snapshot_id: str, copy_sql: str,
                 label: str) -> Iterator[Iterator[bytes]]:
    script = (f"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
              f"SET TRANSACTION SNAPSHOT {literal_text(snapshot_id)};\n{copy_sql};\nROLLBACK;\n")
    env = source.subprocess_env()
    env["PGCLIENTENCODING"] = "UTF8"  # not the locale's: the transforms and the target use UTF-8
    proc = subprocess.Popen(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", f"--dbname={source.conninfo()}", "-f", "-"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdout = cast(io.BufferedReader, proc.stdout)

    def blocks() -> Iterator[bytes]:
        while block := stdout.read1(BLOCK_BYTES):
            yield block
        if proc.wait() != 0:
            error = proc.stderr.read().decode("utf-8", "replace").strip().splitlines() \
                if proc.stderr else []
            reason = next((line for line in error if "ERROR" in line or "FATAL" in line),
                          error[0] if error else f"psql exited with {proc.returncode}")
            reason = re.sub(r"^psql:<stdin>:\d+: ", "", reason)
            raise CopyFailedError(f"copying {label} failed: source: {reason}")

    try:
        proc.stdin.write(script.encode("utf-8"))
        proc.stdin.close()
        yield blocks()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            stream.close()


@contextmanager
def _psycopg_blocks(source: ServerAddress, snapshot_id: str,
                    copy_sql: str) -> Iterator[Iterator[bytes]]:
    with read_only_snapshot(source, snapshot_id) as conn, conn.cursor().copy(copy_sql) as copy:

        def blocks() -> Iterator[bytes]:
            batch: list[bytes] = []
            size = 0
            for chunk in copy:
                batch.append(bytes(chunk))
                size += len(chunk)
                if size >= BLOCK_BYTES:
                    yield b"".join(batch)
                    batch, size = [], 0
            if batch:
                yield b"".join(batch)

        yield blocks()
