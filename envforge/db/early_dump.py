"""The source's snapshot and its schema dump, begun before the command imports anything else.

``envforge db clone --source DSN`` needs psycopg, pydantic and the settings (about 0.15 s of
imports) before it can open a connection, and the clone then waits for ``pg_dump
--schema-only`` (about 0.1 s) and the pre-data section it gives. Started by the command's
first lines instead, with nothing but the standard library: a ``psql`` child opens a
read-only repeatable-read transaction on the source and exports its snapshot, and ``pg_dump
--snapshot`` reads the schema in it while the imports run. The clone's own snapshot session
imports that snapshot (``SET TRANSACTION SNAPSHOT``), so the schema, the catalog, the
classification samples and every row still come from one snapshot; the ``psql`` child keeps
the exporting transaction open until the clone is over (copy workers import it too).

Only a DSN that carries no password is started this way (a password never goes to a child's
command line; it travels in PGPASSWORD once the settings are read): anything that may hold
one, or any failure here, leaves the clone to open its snapshot itself, as before.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin"
CONNECT_TIMEOUT_SECONDS = 10  # as envforge.db.connection's
_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#@]*:[^/?#@]*@", re.IGNORECASE)


def find_pg_tool(name: str, configured: str | None) -> str | None:
    """Path of a PostgreSQL client tool: ``configured`` (ENVFORGE_PG_BIN), then PostgreSQL
    15's bin dir, then PATH; None when none has it."""
    for folder in (configured, DEFAULT_PG_BIN):
        if folder and os.access(os.path.join(folder, name), os.X_OK):
            return os.path.join(folder, name)
    return shutil.which(name)


def may_hold_password(dsn: str) -> bool:
    """Whether a DSN might carry a password (key=value ``password=`` or a URL's ``user:pw@``
    or ``?password=``): erring towards yes only costs the early start."""
    return "password" in dsn.lower() or _URL_WITH_PASSWORD.match(dsn.strip()) is not None


class EarlySchemaDump:
    """The exported snapshot (held by a ``psql`` child) and ``pg_dump --schema-only`` of it,
    run on a thread; :meth:`snapshot` and :meth:`dump_path` wait for them, :meth:`close`
    ends the transaction and removes the dump."""

    def __init__(self, dsn: str, psql: str, pg_dump: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="envforge-schema-")
        self._path = Path(self._dir.name) / "schema.dump"
        self._env = dict(os.environ)
        self._env.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT_SECONDS))
        self._env.setdefault("PGAPPNAME", "envforge")
        self._holder = subprocess.Popen(
            [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", f"--dbname={dsn}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=self._env, text=True)
        assert self._holder.stdin is not None
        try:
            self._holder.stdin.write(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
                "SELECT pg_export_snapshot(), pg_encoding_to_char(encoding) FROM pg_database "
                "WHERE datname = current_database();\n")
            self._holder.stdin.flush()
        except OSError:
            pass  # psql ended at once (a DSN it cannot use): no snapshot, read as EOF below
        self._snapshot: tuple[str, str] | None = None
        self._dump_error = ""
        self._dump_ok = False
        self._exported = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(dsn, pg_dump),
                                        name="envforge-early-dump", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, dsn: str) -> EarlySchemaDump | None:
        """Begun for ``dsn``, or None when it may hold a password or the tools are missing
        (the clone then does it all itself). ENVFORGE_PG_BIN is read here as the settings
        read it (an empty value is unset): loading the settings costs the imports this saves."""
        if may_hold_password(dsn):
            return None
        pg_bin = os.environ.get("ENVFORGE_PG_BIN", "").strip() or None
        psql, pg_dump = find_pg_tool("psql", pg_bin), find_pg_tool("pg_dump", pg_bin)
        if psql is None or pg_dump is None:
            return None
        try:
            return cls(dsn, psql, pg_dump)
        except OSError:
            return None

    def _run(self, dsn: str, pg_dump: str) -> None:
        try:
            assert self._holder.stdout is not None
            fields = self._holder.stdout.readline().strip().split("|")
            if len(fields) == 2 and all(fields):
                self._snapshot = (fields[0], fields[1])
        finally:
            self._exported.set()
        if self._snapshot is None:
            return
        proc = subprocess.run(
            [pg_dump, "--schema-only", "--format=custom", f"--file={self._path}",
             f"--snapshot={self._snapshot[0]}", f"--dbname={dsn}"],
            env=self._env, capture_output=True, text=True, check=False)
        self._dump_ok = proc.returncode == 0
        self._dump_error = proc.stderr

    def snapshot(self) -> tuple[str, str] | None:
        """(snapshot id, the source database's encoding), or None when psql could not
        export one (then nothing of this is used)."""
        self._exported.wait()
        return self._snapshot

    def dump_path(self) -> tuple[Path | None, str]:
        """The schema dump once pg_dump has ended: (its path, "") or (None, pg_dump's
        stderr)."""
        self._thread.join()
        return (self._path, "") if self._dump_ok else (None, self._dump_error)

    def close(self) -> None:
        """End the exporting transaction and psql (bounded), then remove the dump."""
        holder = self._holder
        try:
            if holder.stdin is not None and not holder.stdin.closed:
                holder.stdin.write("ROLLBACK;\n")
                holder.stdin.close()
        except OSError:
            pass  # psql is gone already
        try:
            holder.wait(timeout=5)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
        self._thread.join()
        self._dir.cleanup()
