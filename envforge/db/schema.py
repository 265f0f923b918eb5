"""Schema through pg_dump/pg_restore: tables before the data, indexes and constraints after.

``pg_dump --schema-only -Fc --snapshot`` reads the schema in the clone's exported snapshot;
``pg_restore --section=pre-data`` creates types, tables, sequences and functions, and
``--section=post-data`` builds indexes, constraints and triggers once the rows are in (faster,
and foreign keys are validated once over the final data).
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from envforge.db.connection import ServerAddress
from envforge.db.early_dump import find_pg_tool
from envforge.errors import ConfigurationError, CopyFailedError, DatabaseUnreachableError

# Index builds sort in memory more often; commits of the new, not yet used database need not
# wait for the WAL flush.
_BUILD_OPTIONS = "-c maintenance_work_mem=256MB -c synchronous_commit=off"
_RESTORE_FLAGS = ["--no-owner", "--no-privileges", "--no-publications", "--no-subscriptions",
                  "--no-security-labels", "--exit-on-error"]


def pg_tool(name: str) -> str:
    """Path of pg_dump/pg_restore: $ENVFORGE_PG_BIN, then PostgreSQL 15's bin dir, then PATH."""
    from envforge.settings import load_settings  # not at import: `envforge db` starts fast

    configured = load_settings().db.pg_bin  # ENVFORGE_PG_BIN
    found = find_pg_tool(name, str(configured) if configured else None)
    if not found:
        raise ConfigurationError(f"{name} not found: install the postgresql client package "
                                 "or set ENVFORGE_PG_BIN to its directory")
    return found


def run_pg_tool(args: list[str], address: ServerAddress, what: str,
                options: str | None = None) -> None:
    """Run a PostgreSQL client tool; a failure names ``what`` and the tool's last lines."""
    env = address.subprocess_env()
    if options:
        env["PGOPTIONS"] = options
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = failure_reason(proc.stderr)
        if "could not connect" in tail or "Connection refused" in tail:
            raise DatabaseUnreachableError(f"{what}: cannot reach {address.label}: {tail}")
        raise CopyFailedError(f"{what} on {address.label} failed: {tail}")


def failure_reason(stderr: str) -> str:
    """The lines of a tool's stderr that say what went wrong. With ``--jobs`` pg_restore ends
    with "a worker process died unexpectedly" after the worker's own error: the first ERROR or
    FATAL line (and its DETAIL) is the reason, the last lines are only the aftermath."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "ERROR:" in line or "FATAL:" in line or "could not connect" in line:
            reason = [line.split("ERROR:", 1)[-1].strip() if "ERROR:" in line else line]
            reason += [n for n in lines[i + 1:i + 3] if n.startswith("DETAIL:")]
            return " | ".join(reason)
    return " | ".join(lines[-3:])


def dump_schema(source: ServerAddress, snapshot_id: str | None, path: Path) -> None:
    args = [pg_tool("pg_dump"), "--schema-only", "--format=custom", f"--file={path}",
            f"--dbname={source.conninfo()}"]
    if snapshot_id:
        args.append(f"--snapshot={snapshot_id}")
    run_pg_tool(args, source, "reading the schema (pg_dump --schema-only)")


SECTIONS = ("pre-data", "post-data")


class BackgroundSchemaDump:
    """``pg_dump --schema-only`` of the snapshot, started at once in a thread (it only reads
    the source) so that it overlaps the rule checks and classification, followed by each
    section as SQL text (:func:`section_sql`); :meth:`path` and :meth:`sql` wait for it. Use
    as a context manager: the dump file is removed on exit. ``dumped``: a dump of that
    snapshot begun already (envforge.db.early_dump; it waits for it and gives its path, or
    None and pg_dump's stderr), used instead of running pg_dump here."""

    def __init__(self, source: ServerAddress, snapshot_id: str,
                 dumped: Callable[[], tuple[Path | None, str]] | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="envforge-schema-")
        self._path = Path(self._dir.name) / "schema.dump"
        self._error: BaseException | None = None
        self._sql: dict[str, str | None] = {}
        self._thread = threading.Thread(target=self._run, args=(source, snapshot_id, dumped),
                                        name="envforge-schema-dump", daemon=True)
        self._thread.start()

    def _run(self, source: ServerAddress, snapshot_id: str,
             dumped: Callable[[], tuple[Path | None, str]] | None) -> None:
        try:
            if dumped is None:
                dump_schema(source, snapshot_id, self._path)
            else:
                path, stderr = dumped()
                if path is None:
                    raise CopyFailedError(f"reading the schema (pg_dump --schema-only) on "
                                          f"{source.label} failed: {failure_reason(stderr)}")
                self._path = path
            # both sections at once: two short pg_restore processes, not one after the other
            running = [(section, _start_section_sql(self._path, section))
                       for section in SECTIONS]
            for section, proc in running:
                self._sql[section] = _finish_section_sql(proc, section)
        except BaseException as e:  # handed to the caller of path()
            self._error = e

    def path(self) -> Path:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._path

    def sql(self, section: str) -> str | None:
        """The section as SQL to run on a connection, or None when it must go through
        pg_restore (:func:`section_sql`)."""
        self.path()
        return self._sql.get(section)

    def __enter__(self) -> BackgroundSchemaDump:
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join()  # bounded: pg_dump of a schema ends, or fails, on its own
        self._dir.cleanup()


def restore_section(target: ServerAddress, path: Path, section: str, jobs: int = 1) -> None:
    """Restore one section (pre-data, data or post-data) of a custom-format dump. Serial
    restores run as one transaction: one commit instead of one per statement (hundreds for a
    schema with many partitions), and a failure leaves nothing half-made."""
    args = [pg_tool("pg_restore"), f"--section={section}", *_RESTORE_FLAGS,
            f"--dbname={target.conninfo()}", str(path)]
    args.insert(1, f"--jobs={jobs}" if jobs > 1 else "--single-transaction")
    run_pg_tool(args, target, f"restoring the {section} section", _BUILD_OPTIONS)


def section_sql(path: Path, section: str) -> str | None:
    """One section of a schema dump as SQL text (``pg_restore --file=-``, no connection), to
    be run on a session the clone already has (:func:`apply_section_sql`): a small clone then
    pays neither a pg_restore connection to the new database nor its start. Newer pg_restore
    brackets its output with psql's ``\\restrict KEY`` / ``\\unrestrict KEY`` (they only guard
    psql itself); those two lines are dropped. Any other line that starts with a backslash
    might be a psql command, so the section is then left to pg_restore (None)."""
    return _finish_section_sql(_start_section_sql(path, section), section)


def _start_section_sql(path: Path, section: str) -> subprocess.Popen[bytes]:
    args = [pg_tool("pg_restore"), f"--section={section}", *_RESTORE_FLAGS, "--file=-",
            str(path)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish_section_sql(proc: subprocess.Popen[bytes], section: str) -> str | None:
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise CopyFailedError(f"reading the {section} section of the schema dump failed: "
                              f"{failure_reason(stderr.decode('utf-8', 'replace'))}")
    lines = stdout.decode("utf-8").split("\n")
    meta = [i for i, line in enumerate(lines) if line.startswith("\\")]
    if meta:
        first, last = lines[meta[0]].split(" "), lines[meta[-1]].split(" ")
        if (len(meta) != 2 or len(first) != 2 or first[0] != "\\restrict"
                or last != ["\\unrestrict", first[1]]):
            return None
        lines[meta[0]] = lines[meta[-1]] = ""
    return "\n".join(lines)


def apply_section_sql(conn: psycopg.Connection[Any], target: ServerAddress, sql_text: str,
                      section: str) -> None:
    """Run a section's SQL (from :func:`section_sql`) in one transaction on ``conn`` (an
    autocommit session to the target); a failure is reported as pg_restore's would be. The
    dump's own session settings (search_path emptied, ...) are put back afterwards."""
    try:
        with conn.transaction():
            conn.execute(sql_text.encode("utf-8"))
    except psycopg.Error as e:
        reason = failure_reason("ERROR: " + str(e).strip())
        raise CopyFailedError(f"restoring the {section} section on {target.label} failed: "
                              f"{reason}") from None
    finally:
        if not conn.closed and not conn.broken:
            conn.execute("RESET search_path")


def dump_database(address: ServerAddress, path: Path) -> None:
    """A whole database in custom format (snapshots of anonymised clones)."""
    run_pg_tool([pg_tool("pg_dump"), "--format=custom", f"--file={path}",
                 f"--dbname={address.conninfo()}"], address, "dumping the database")


def restore_database(target: ServerAddress, path: Path, jobs: int = 2) -> None:
    args = [pg_tool("pg_restore"), *_RESTORE_FLAGS, f"--dbname={target.conninfo()}", str(path)]
    if jobs > 1:
        args.insert(1, f"--jobs={jobs}")
    run_pg_tool(args, target, "restoring the snapshot", _BUILD_OPTIONS)
