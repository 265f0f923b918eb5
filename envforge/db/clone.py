"""Clone a source database into a new, envforge-owned target with anonymisation in flight.

Order of work, so that nothing unsafe is ever written:
1. one read-only repeatable-read transaction on the source exports a snapshot; the catalog,
   rule checks, strict classification and subset planning all read that snapshot (the schema
   dump and, when no database of its name exists, an empty target are begun meanwhile:
   :mod:`envforge.db.clone_start`);
2. only then is the target taken (refused if it is the source or not envforge's; an early
   one gets its full marker);
3. pre-data schema, parallel COPY workers on the same snapshot, sequences, post-data schema
   (indexes, constraints, triggers), ANALYZE;
4. any failure or interruption drops the target before the error propagates.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import closing, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from envforge.db.catalog import Catalog, read_catalog
from envforge.db.classify import ColumnDecision, classify_columns, stop_findings
from envforge.db.clone_start import (
    SESSION_SETTINGS,
    CloneStart,
    CloneTerminated,
    terminate_raises,
)
from envforge.db.collisions import (
    Resolutions,
    UniqueKey,
    duplicate_outputs,
    resolve_round,
    unique_keys,
)
from envforge.db.connection import ServerAddress, connected, read_only_snapshot
from envforge.db.copy import (
    CopyResult,
    CopyTask,
    run_copy_task,
    run_copy_tasks_shared,
    warm_up,
)
from envforge.db.coverage import CoverageMap, resolve_coverage
from envforge.db.identifiers import identifier, identifier_text
from envforge.db.identity import schema_fingerprint, source_instance, source_server_key
from envforge.db.maintenance import analyze, pause_autovacuum, resume_autovacuum
from envforge.db.objects import owners_and_grants, populated_matviews, refresh_matviews
from envforge.db.request import CloneReport, CloneRequest, log
from envforge.db.rules import Rules
from envforge.db.safety import (
    building_marker,
    create_owned_database,
    drop_owned_database,
    finish_building,
)
from envforge.db.schema import BackgroundSchemaDump, apply_section_sql, restore_section
from envforge.db.small_lanes import MIN_LANE_BYTES, SecondLane, run_on_two_lanes
from envforge.db.subset import select_subset
from envforge.db.tasks import SMALL_TASK_BYTES, plan_tasks
from envforge.errors import CopyFailedError, EnvforgeError, PersonalDataError

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

__all__ = ["CloneReport", "CloneRequest", "CloneTerminated", "clone_database", "inspect_source",
           "log"]


def clone_database(request: CloneRequest, logger: Any = log,
                   start: CloneStart | None = None) -> CloneReport:
    """Clone with the request's rules; raises before writing anything if rules or strict
    classification fail, and drops the target if anything fails. ``start``: the snapshot,
    schema dump and early target the caller opened already (envforge.db.clone_start; the
    CLI opens it before importing this module), else they are opened here."""
    started = time.perf_counter()
    if start is None:
        with CloneStart(request.source, request.target, request.marker,
                        replace=request.replace) as own:
            return clone_database(request, logger, own)
    if (start.source, start.target) != (request.source, request.target):
        raise CopyFailedError("the clone's start was opened for another source or target")
    with _Workers() as workers:
        return _clone_in_snapshot(request, start, workers, started, logger)


def _clone_in_snapshot(request: CloneRequest, start: CloneStart, workers: _Workers,
                       started: float, logger: Any) -> CloneReport:
    snap, snapshot_id, schema = start.snap, start.snapshot_id, start.schema
    encoding = start.encoding
    catalog = read_catalog(snap)
    coverage = resolve_coverage(request.rules, catalog, request.rules_source)
    if request.rules.strict:
        findings = stop_findings(classify_columns(snap, catalog, coverage, request.rules))
        if findings:
            raise PersonalDataError(findings)
    selection = select_subset(snap, catalog, request.rules, logger) \
        if request.rules.subset else None
    sequences = _read_sequences(snap, catalog)
    matviews = populated_matviews(snap)
    not_copied = owners_and_grants(snap)
    tasks = plan_tasks(catalog, coverage, request.rules, selection, _binary_copy())
    if _parallel(request, _large(tasks)):
        workers.start(request.jobs)  # while the target and its schema are made
    if start.early.created:  # the second copy lane's sessions open while the rest is read
        workers.lane = _second_lane(request, snapshot_id, tasks)
    keys = unique_keys(snap, catalog, coverage)
    name = request.target.dbname
    # What was read, recorded with the target: goldens compare it before they are branched.
    marker = dict(request.marker, strategy="clone", source=request.source.label,
                  source_id=source_server_key(snap), source_instance=source_instance(snap),
                  source_database=request.source.dbname)
    if request.marker.get("role") == "staging":  # a golden's rebuild: its identity has the
        marker["schema"] = schema_fingerprint(snap)  # schema's shape (a catalog-wide query)
    # until the copy is complete, the marker names this process: a clone killed meanwhile
    # leaves a database the next clone of that name drops instead of refusing (safety.py)
    marker = building_marker(marker)
    if not start.early.adopt(marker):  # else made while the source was read
        create_owned_database(request.target, name, marker, replace=request.replace,
                              encoding=encoding)
    logger.info("created target database %s; copying %d table(s) in %d task(s)",
                request.target.label, len(catalog.tables), len(tasks))
    try:
        with terminate_raises():
            try:
                results = _build_target(request, snap, snapshot_id, schema, tasks, keys,
                                        sequences, matviews, logger, resolve=False,
                                        workers=workers, session=start.early.take_session(),
                                        pre_data_done=start.early.pre_data_applied)
            except _CollisionsFound:
                # Rare: start again on a fresh target, resolving before any index exists.
                logger.warning("transformed values collided on a unique key; rebuilding "
                               "%s with the collisions resolved", request.target.label)
                drop_owned_database(request.target, name)
                create_owned_database(request.target, name, marker, encoding=encoding)
                results = _build_target(request, snap, snapshot_id, schema, tasks, keys,
                                        sequences, matviews, logger, resolve=True)
    except BaseException:
        logger.error("clone into %s failed; dropping the target", request.target.label)
        drop_owned_database(request.target, name)
        raise
    if not start.early.finish():
        finish_building(request.target, name)
    rows = sum(r.rows for r in results)
    size = sum(r.bytes for r in results)
    per_table: dict[str, int] = {t: 0 for t in catalog.tables}
    busy: dict[str, tuple[int, float]] = {}
    for r in results:
        per_table[r.table] += r.rows
        size_so_far, secs_so_far = busy.get(r.table, (0, 0.0))
        busy[r.table] = (size_so_far + r.bytes, secs_so_far + r.seconds)
    for table, (table_bytes, worker_seconds) in sorted(busy.items()):
        logger.info("table %s: %s rows, %.1f MB, %s rows/s per worker", table,
                    f"{per_table[table]:,}", table_bytes / 1e6,
                    f"{per_table[table] / max(worker_seconds, 1e-6):,.0f}")
    seconds = time.perf_counter() - started
    for line in not_copied:
        logger.warning("not copied: %s", line)
    logger.info("clone of %s into %s done: %s rows, %.1f MB in %.1f s", request.source.label,
                request.target.label, f"{rows:,}", size / 1e6, seconds)
    return CloneReport(name, rows, size, seconds, per_table, selection is not None, not_copied)


def inspect_source(source: ServerAddress, rules: Rules, rules_source: str = "rules"
                   ) -> tuple[Catalog, CoverageMap, list[ColumnDecision]]:
    """What a clone would decide for every column, without creating anything (dry runs, plan).
    Raises RulesError when the rules do not fit the source."""
    with read_only_snapshot(source) as snap:
        catalog = read_catalog(snap)
        coverage = resolve_coverage(rules, catalog, rules_source)
        return catalog, coverage, classify_columns(snap, catalog, coverage, rules)


def _build_target(request: CloneRequest, snap: psycopg.Connection[Any], snapshot_id: str,
                  schema: BackgroundSchemaDump, tasks: list[CopyTask], keys: list[UniqueKey],
                  sequences: list[tuple[str, int, bool]], matviews: list[tuple[str, str]],
                  logger: Any, *, resolve: bool, workers: _Workers | None = None,
                  session: psycopg.Connection[Any] | None = None,
                  pre_data_done: bool = False) -> list[CopyResult]:
    """Schema, rows, sequences, indexes. Collisions on unique keys are optimistic: with
    ``resolve`` False nothing is checked (the unique index builds are the check); when one of
    them fails on duplicated transformed values, _CollisionsFound asks for a rebuild with
    ``resolve`` True, which resolves them before any index exists (collisions.py).
    ``session``: an autocommit session to the target opened already (closed here), with
    the pre-data section applied when ``pre_data_done``."""
    # A second pair of sessions for the small tables (small_lanes.py): the one opened while
    # the source was read, else one opened meanwhile.
    lane = workers.take_lane() if workers is not None else None
    if lane is None and not resolve:
        lane = _second_lane(request, snapshot_id, tasks)
    schema_file = schema.path()
    # One session to the target does the schema, the small tables, the sequences and (small
    # clones) the indexes: each new session to a new database costs a backend start and a
    # relation cache built from scratch, each pg_restore a process too.
    with (closing(session) if session is not None
          else connected(request.target, autocommit=True)) as dst, \
            (closing(lane) if lane is not None else nullcontext()):
        dst.execute(SESSION_SETTINGS)
        if not pre_data_done:
            _apply_section(dst, request.target, schema, schema_file, "pre-data")
        large = sum(t.size_bytes for t in tasks) >= request.parallel_min_bytes
        paused = pause_autovacuum(request.target) if large else []
        if dst.info.server_version // 10000 != snap.info.server_version // 10000:
            tasks = [replace(t, binary=False) for t in tasks]  # binary forms may differ
        results = list(_run_tasks(request, snapshot_id, tasks, logger, snap,
                                  workers.take() if workers else None, dst, lane))
        if lane is not None:
            lane.close()  # its backends are not needed for the rest
        if resolve and keys:
            results = _resolve_collisions(request, snap, snapshot_id, tasks, keys, results,
                                          logger)
        with dst.transaction():  # every sequence in one statement: one round trip
            for part in range(0, len(sequences), _SEQUENCES_PER_STATEMENT):
                chunk = sequences[part:part + _SEQUENCES_PER_STATEMENT]
                dst.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
                    sql.SQL("setval({}::regclass, {}, {})").format(
                        sql.Literal(seq), sql.Literal(value), sql.Literal(called))
                    for seq, value, called in chunk)))
        logger.info("data copied; building indexes, constraints and triggers")
        small = sum(r.bytes for r in results) < request.parallel_min_bytes
        try:  # parallel index builds only pay off on more data than a worker costs to start
            _apply_section(dst, request.target, schema, schema_file, "post-data",
                           jobs=1 if small else request.jobs)
        except CopyFailedError:
            if not resolve and keys and _any_duplicates(request.target, keys):
                raise _CollisionsFound from None
            raise
        refresh_matviews(dst, matviews, logger)
        if not small:  # small databases: autovacuum's analyze comes soon enough
            analyze(request.target, request.jobs)
        resume_autovacuum(request.target, paused)
        _make_durable(dst)
    return results


def _binary_copy() -> bool:
    """Binary COPY where exact (copy_binary.py), unless ENVFORGE_DB_BINARY_COPY=false."""
    from envforge.settings import load_settings  # not at import: `envforge db` starts fast

    return load_settings().db.binary_copy


def _second_lane(request: CloneRequest, snapshot_id: str,
                 tasks: list[CopyTask]) -> SecondLane | None:
    """The second lane for the small tasks when there are enough of them and jobs allow."""
    small = [t for t in tasks if t.size_bytes < SMALL_TASK_BYTES]
    if (request.jobs < 2 or len({t.table for t in small}) < 2
            or sum(t.size_bytes for t in small) < MIN_LANE_BYTES):
        return None
    return SecondLane(request.source, request.target, snapshot_id, SESSION_SETTINGS)


def _apply_section(dst: psycopg.Connection[Any], target: ServerAddress,
                   schema: BackgroundSchemaDump, schema_file: Path, section: str,
                   jobs: int = 1) -> None:
    """A schema section on ``dst`` as SQL (one transaction), or through pg_restore when it
    runs on several sessions (``jobs``) or its SQL could not be taken out of the dump."""
    sql_text = schema.sql(section) if jobs == 1 else None
    if sql_text is None:
        restore_section(target, schema_file, section, jobs=jobs)
    else:
        apply_section_sql(dst, target, sql_text, section)


def _make_durable(dst: psycopg.Connection[Any]) -> None:
    """Wait until everything the clone committed is on disk: one commit with
    synchronous_commit on flushes the WAL up to it, the earlier asynchronous commits with it,
    so a clone reported done survives a server crash."""
    dst.execute("SET synchronous_commit = on")
    with dst.transaction():
        dst.execute("SELECT pg_current_xact_id()")  # a transaction id: its commit is flushed


MAX_RESOLUTION_ROUNDS = 5


class _CollisionsFound(Exception):
    """A unique index failed on transformed values that collided: rebuild with resolution."""


def _any_duplicates(target: ServerAddress, keys: list[UniqueKey]) -> bool:
    """Whether a failed index build may be a collision; False when that cannot be told (the
    original error is then reported as it is)."""
    try:
        with connected(target, autocommit=True) as conn:
            return any(duplicate_outputs(conn, key) for key in keys)
    except (psycopg.Error, EnvforgeError):
        return False


def _resolve_collisions(request: CloneRequest, snap: psycopg.Connection[Any], snapshot_id: str,
                        tasks: list[CopyTask], keys: list[UniqueKey],
                        results: list[CopyResult], logger: Any) -> list[CopyResult]:
    """Before indexes are built: find unique keys whose transformed values collided, resolve
    them (collisions.py) and copy the tables using the affected transformers again, until no
    key has duplicates. Nothing is re-copied in the usual case of no collision."""
    resolutions: Resolutions = {}
    with connected(request.target, autocommit=True) as conn:
        for round_no in range(MAX_RESOLUTION_ROUNDS + 1):
            changed: set[str] = set()
            for key in keys:
                duplicates = duplicate_outputs(conn, key)
                if not duplicates:
                    continue
                if round_no == MAX_RESOLUTION_ROUNDS:
                    raise CopyFailedError(f"unique key {key.label}: transformed values still "
                                          f"collide after {round_no} resolution rounds")
                logger.warning("unique key %s: %d transformed value(s) shared by several "
                               "rows; resolving", key.label, len(duplicates))
                changed |= resolve_round(snap, conn, key, duplicates, request.key, resolutions)
            if not changed:
                return results
            flat = tuple((kind, rid, attempt) for kind, ids in sorted(resolutions.items())
                         for rid, attempt in sorted(ids.items()))
            redo = [replace(t, resolutions=flat) for t in tasks
                    if any(f.rule.transform in changed for f in t.fields)]
            redo_tables = {t.table for t in redo}
            physical = sorted({t.physical_sql for t in redo})
            logger.info("copying %s again with %d resolved value(s)",
                        ", ".join(sorted(redo_tables)), len(flat))
            conn.execute(sql.SQL("TRUNCATE {}").format(
                sql.SQL(", ").join(map(sql.SQL, physical))))  # psycopg-quoted names
            results = [r for r in results if r.table not in redo_tables]
            results += _run_tasks(request, snapshot_id, redo, logger, snap)
    return results


class _Workers:
    """The ``jobs - 1`` copy worker processes, started ahead of the copy: spawning an
    interpreter and importing envforge takes about 0.4 s, hidden behind making the target
    and restoring its schema. ``lane``: the small tables' second lane (small_lanes.py), if
    opened ahead too; closed here unless taken."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self.lane: SecondLane | None = None

    def take_lane(self) -> SecondLane | None:
        lane, self.lane = self.lane, None
        return lane

    def start(self, jobs: int) -> None:
        self._pool = _process_pool(jobs - 1)
        for _ in range(jobs - 1):
            self._pool.submit(warm_up)

    def take(self) -> ProcessPoolExecutor | None:
        pool, self._pool = self._pool, None
        return pool

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        lane = self.take_lane()
        if lane is not None:
            lane.close()
        pool = self.take()  # not taken: the clone failed or stopped before copying
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _process_pool(workers: int) -> ProcessPoolExecutor:
    """Copy worker processes (spawned: no forked copy of this process's connections).
    Imported here: multiprocessing costs a small clone's start 30 ms for nothing."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"))


def _large(tasks: list[CopyTask], snap: bool = True) -> list[CopyTask]:
    """The tasks the lanes share; the others (small) run first in this process."""
    return [t for t in tasks if not (snap and t.size_bytes < SMALL_TASK_BYTES)]


def _parallel(request: CloneRequest, tasks: list[CopyTask]) -> bool:
    return (request.jobs > 1 and len(tasks) > 1
            and sum(t.size_bytes for t in tasks) >= request.parallel_min_bytes)


def _run_tasks(request: CloneRequest, snapshot_id: str, tasks: list[CopyTask],
               logger: Any, snap: psycopg.Connection[Any] | None = None,
               pool: ProcessPoolExecutor | None = None,
               dst: psycopg.Connection[Any] | None = None,
               lane: SecondLane | None = None) -> Iterator[CopyResult]:
    """Run the tasks on ``jobs`` lanes: this process is one of them, ``jobs - 1`` spawned
    worker processes (``pool`` if already started) are the others (one interpreter fewer in
    memory than a full pool). Small tasks run first in this process over ``snap`` (the
    snapshot's own connection) and, with a ``lane``, on its sessions too (small_lanes.py)."""
    args = (request.source, request.target, snapshot_id, request.key)
    small = [t for t in tasks if snap is not None and t.size_bytes < SMALL_TASK_BYTES]
    tasks = _large(tasks, snap is not None)

    def run_small() -> Iterator[CopyResult]:
        if snap is not None and small:
            shared = (run_on_two_lanes(snap, dst, request.target, request.key, small, lane)
                      if lane is not None and dst is not None else
                      run_copy_tasks_shared(snap, request.target, request.key, small, dst))
            for result in shared:
                _log_result(logger, result)
                yield result

    if not _parallel(request, tasks):
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        yield from run_small()
        for task in tasks:
            result = run_copy_task(*args, task)
            _log_result(logger, result)
            yield result
        return
    pending = deque(tasks)
    lock = threading.Lock()
    finished: queue.Queue[Future[CopyResult]] = queue.Queue()
    if pool is None:
        pool = _process_pool(request.jobs - 1)

    active: dict[int, str] = {}  # lane -> the table it copies

    def take(lane: int, previous: str | None) -> CopyTask | None:
        """A lane's next task: the next slice of the table it was copying, else one of a
        table no other lane copies, else the next. Lanes then append to different tables
        (no two sessions extending one table, rows in slice order) until the end."""
        with lock:
            others = {table for other, table in active.items() if other != lane}
            task = next((t for t in pending if t.table == previous), None) or next(
                (t for t in pending if t.table not in others), None) or (
                pending[0] if pending else None)
            if task is None:
                active.pop(lane, None)
                return None
            pending.remove(task)
            active[lane] = task.table
            return task

    def submit_next(lane: int, previous: str | None) -> None:
        task = take(lane, previous)
        if task is None:
            return
        future = pool.submit(run_copy_task, *args, task)
        future.add_done_callback(lambda f: on_done(f, lane, task.table))

    def on_done(future: Future[CopyResult], lane: int, table: str) -> None:
        finished.put(future)
        if not future.cancelled() and future.exception() is None:
            submit_next(lane, table)

    def drain(block: bool) -> Iterator[CopyResult]:
        while True:
            try:
                future = finished.get(block=block, timeout=None if block else 0)
            except queue.Empty:
                return
            result = future.result()  # re-raises the worker's CopyFailedError
            _log_result(logger, result)
            yield result
            if block:
                return

    completed = False
    try:
        for number in range(1, request.jobs):  # lane 0 is this process
            submit_next(number, None)
        yield from run_small()  # while the workers take the large ones
        done = 0
        mine: CopyTask | None = None
        while True:
            mine = take(0, mine.table if mine else None)
            if mine is None:
                break
            result = run_copy_task(*args, mine)
            _log_result(logger, result)
            done += 1
            yield result
            for result in drain(block=False):
                done += 1
                yield result
        while done < len(tasks):
            for result in drain(block=True):
                done += 1
                yield result
        completed = True
    finally:
        with lock:
            pending.clear()
        # On success the idle worker is gone before indexes are built (memory); on failure
        # nothing waits for it: dropping the target ends its session.
        pool.shutdown(wait=completed, cancel_futures=True)


def _log_result(logger: Any, r: CopyResult) -> None:
    secs = max(r.seconds, 1e-6)
    logger.info("copied %s: %s rows, %.1f MB in %.2f s (%s rows/s, %.1f MB/s)", r.label,
                f"{r.rows:,}", r.bytes / 1e6, r.seconds, f"{r.rows / secs:,.0f}",
                r.bytes / 1e6 / secs)


_SEQUENCES_PER_STATEMENT = 500


def _read_sequences(conn: psycopg.Connection[Any], catalog: Catalog) -> list[tuple[str, int, bool]]:
    """Every sequence's state, up to 500 sequences per query (one round trip for most
    schemas instead of one per sequence)."""
    values = []
    for part in range(0, len(catalog.sequences), _SEQUENCES_PER_STATEMENT):
        chunk = catalog.sequences[part:part + _SEQUENCES_PER_STATEMENT]
        query = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {}::int, last_value, is_called FROM {}").format(
                sql.Literal(i), identifier(schema, name))
            for i, (schema, name) in enumerate(chunk))
        for i, last_value, is_called in conn.execute(query).fetchall():
            schema, name = chunk[int(i)]
            values.append((identifier_text(schema, name), int(last_value), bool(is_called)))
    return values
