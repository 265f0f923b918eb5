"""The part of a clone that needs no rules, begun before the rules are even imported.

A small clone's wall time is mostly waiting: the command's own imports (about 0.3 s of CPU),
``pg_dump`` of the schema, and ``CREATE DATABASE`` (a WAL flush with fsync on). A
:class:`CloneStart` opens the source's snapshot, starts the schema dump in the background and,
on a thread, creates the target, while the caller imports and checks the rules and classifies
the source; ``envforge db clone`` opens it before it imports the clone machinery.

The target is created early only when no database of that name exists (a ``--replace`` of an
existing one waits for the checks, as the old database must survive a refused clone), with a
provisional envforge marker, and gets the schema's pre-data section (types, tables, functions:
the source's schema, which every clone copies; never a row) as soon as the dump has it. The
clone *adopts* it once the rules and strict classification have passed (the marker then gets
what was read from the source); a clone that is refused or fails before that drops it again
on the way out, so a refusal still leaves nothing behind and no row is ever written before
the checks.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import psycopg

from envforge.core.signals import sigterm_raises
from envforge.db.connection import ServerAddress, open_connection, read_only_snapshot
from envforge.db.early_dump import EarlySchemaDump
from envforge.db.safety import (
    assert_not_source,
    building_marker,
    create_owned_database_on,
    drop_owned_database,
    finish_building_on,
    ownership_marker,
    write_marker,
)
from envforge.db.schema import BackgroundSchemaDump, apply_section_sql
from envforge.errors import CopyFailedError, EnvforgeError, Terminated

# Index builds sort in memory more often; commits of the new, not yet used database need not
# wait for the WAL flush (the clone waits once for all of them at the end).
SESSION_SETTINGS = ("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'; "
                    "SET client_encoding = 'UTF8'")


class EarlyTarget:
    """``CREATE DATABASE`` of the target on a thread (psycopg waits without the GIL, so the
    caller's imports and classification run meanwhile), then a session to it for the clone
    with the pre-data section applied (``pre_data``: its SQL once the dump has it, or None
    when it must go through pg_restore; the clone then applies it itself)."""

    def __init__(self, target: ServerAddress, marker: dict[str, Any], encoding: str,
                 pre_data: Callable[[], str | None] | None = None, *,
                 enabled: bool = True) -> None:
        self._target, self._marker, self._encoding = target, marker, encoding
        self._pre_data = pre_data
        self.pre_data_applied = False
        self._admin: psycopg.Connection[Any] | None = None
        self._session: psycopg.Connection[Any] | None = None
        self._written: dict[str, Any] = {}
        self.created = self.adopted = False
        self._thread = threading.Thread(target=self._run, name="envforge-early-target",
                                        daemon=True)
        if enabled:
            self._thread.start()

    def _run(self) -> None:
        name = self._target.dbname
        try:
            admin = self._admin = open_connection(self._target.with_database("postgres"),
                                                  autocommit=True)
            try:
                ownership_marker(admin, name)
                return  # it exists: the clone decides about it after its checks
            except LookupError:
                pass
            create_owned_database_on(admin, self._target, name, self._marker,
                                     encoding=self._encoding)
            self.created = True
            self._written = ownership_marker(admin, name) or {}
            session = self._session = open_connection(self._target, autocommit=True)
            session.execute(SESSION_SETTINGS)
            sql_text = self._pre_data() if self._pre_data is not None else None
            if sql_text is not None:
                apply_section_sql(session, self._target, sql_text, "pre-data")
                self.pre_data_applied = True
        except (EnvforgeError, psycopg.Error, OSError):
            # Not created early (a database of that name appeared, no CREATEDB right, ...):
            # the clone creates it after its checks and reports what is wrong then.
            pass

    def _wait(self) -> None:
        if self._thread.ident is not None:
            self._thread.join()

    def adopt(self, marker: dict[str, Any]) -> bool:
        """Make the early database the clone's target with its full ``marker`` (after the
        checks); False when there is none (the caller creates the target itself)."""
        self._wait()
        if not self.created or self._admin is None:
            return False
        try:
            write_marker(self._admin, self._target.dbname, dict(self._written, **marker))
        except psycopg.Error as e:
            raise CopyFailedError(f"cannot mark database {self._target.label}: "
                                  f"{str(e).strip().splitlines()[0]}") from e
        self.adopted = True
        return True

    def finish(self) -> bool:
        """Mark the adopted target complete (safety.finish_building) over the maintenance
        session kept from its creation, saving a new connection at the clone's end; False
        when there is none (the caller uses finish_building)."""
        if not self.adopted or self._admin is None or self._admin.closed:
            return False
        try:
            finish_building_on(self._admin, self._target.dbname)
        except psycopg.Error:
            return False
        return True

    def take_session(self) -> psycopg.Connection[Any] | None:
        """The autocommit session to the adopted target (the caller closes it), if any."""
        session, self._session = (self._session, None) if self.adopted else (None, None)
        return session

    def close(self) -> None:
        """Close the sessions; drop the early database unless the clone adopted it."""
        self._wait()
        for conn in (self._session, self._admin):
            if conn is not None:
                conn.close()
        self._session = self._admin = None
        if self.created and not self.adopted:
            with contextlib.suppress(EnvforgeError):
                drop_owned_database(self._target, self._target.dbname)


class CloneStart:
    """The source's read-only snapshot (exported for the copy workers), the background schema
    dump of that snapshot and the early target; a context manager that closes all of them.
    ``target``'s database is the clone's target; ``marker`` its provisional envforge marker.
    ``early``: the snapshot and schema dump the command began before its imports (taken
    over and closed here; when it has no snapshot, the clone opens its own)."""

    def __init__(self, source: ServerAddress, target: ServerAddress, marker: dict[str, Any],
                 *, replace: bool = False, early: EarlySchemaDump | None = None) -> None:
        self.source, self.target = source, target
        self._early = early
        self._marker, self._replace = building_marker(dict(marker, strategy="clone")), replace
        self._stack = ExitStack()
        self.snap: psycopg.Connection[Any]
        self.snapshot_id = self.encoding = ""
        self.schema: BackgroundSchemaDump
        self.early: EarlyTarget

    def __enter__(self) -> CloneStart:
        try:
            early, self._early = self._early, None
            if early is not None:
                self._stack.callback(early.close)  # the exporting transaction ends last
            assert_not_source(self.source, self.target)
            self._stack.enter_context(terminate_raises())
            if early is None or not self._start_on(early):
                self._start_own()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _start_own(self) -> None:
        self.snap = self._stack.enter_context(read_only_snapshot(self.source))
        row = self.snap.execute(
            "SELECT pg_export_snapshot(), pg_encoding_to_char(encoding) "
            "FROM pg_database WHERE datname = current_database()").fetchone()
        if row is None:
            raise CopyFailedError(f"{self.source.label}: no such database")
        self.snapshot_id, self.encoding = str(row[0]), str(row[1])
        self.schema = self._stack.enter_context(
            BackgroundSchemaDump(self.source, self.snapshot_id))
        schema = self.schema
        self.early = EarlyTarget(self.target, self._marker, self.encoding,
                                 lambda: schema.sql("pre-data"))
        self._stack.callback(self.early.close)

    def _start_on(self, early: EarlySchemaDump) -> bool:
        """The schema dump and the early target on the snapshot the early psql exported,
        then this clone's snapshot session joining it (the target is begun before the join,
        which is off its path); False, with what it began closed again (an early target
        dropped), when there is no such snapshot or it cannot be joined (PostgreSQL refuses a
        snapshot of another database)."""
        exported = early.snapshot()
        if exported is None:
            return False
        begun = ExitStack()
        try:
            schema = begun.enter_context(
                BackgroundSchemaDump(self.source, exported[0], early.dump_path))
            target = EarlyTarget(self.target, self._marker, exported[1],
                                 lambda: schema.sql("pre-data"))
            begun.callback(target.close)
            session = read_only_snapshot(self.source, exported[0])
            try:
                snap = session.__enter__()
            except psycopg.Error:
                begun.close()
                return False
            begun.push(session.__exit__)
        except BaseException:
            begun.close()
            raise
        self._stack.enter_context(begun)
        self.snap, (self.snapshot_id, self.encoding) = snap, exported
        self.schema, self.early = schema, target
        return True

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


class CloneTerminated(Terminated):
    """SIGTERM arrived during a clone (e.g. a cancelled flow run): unwind and drop the target."""


def terminate_raises() -> contextlib.AbstractContextManager[None]:
    """Turn SIGTERM into CloneTerminated while a clone runs, so its cleanup (dropping the
    target, early or not) runs (envforge.core.signals)."""
    return sigterm_raises(lambda: CloneTerminated("terminated (SIGTERM) while cloning"))
