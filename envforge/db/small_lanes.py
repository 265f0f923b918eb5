"""A small clone's tables on two lanes inside the command's own process.

Tasks under SMALL_TASK_BYTES run over shared sessions rather than worker processes (starting
a worker costs more than their rows). One pair of sessions copies them one after another and
mostly waits: on the target's backend parsing and inserting each COPY, then on the source's.
A second pair on a thread (its source session joins the clone's exported snapshot, so both
lanes read the same data; its target session commits its tables in one transaction, as the
first lane does) keeps a second backend busy meanwhile. The target is new and unseen until
the clone finishes, so two sessions writing different tables change nothing of the result.
All tasks of one table go to one lane (a partitioned table's leaves share their transforms'
memos, and two sessions never extend one table at once).

The post-data section stays on the first lane's session, in one transaction: cut over both
sessions (builds of different tables at once, foreign keys after) it took longer, 132-148 ms
against 110-116 ms for Pagila (likely: each session rebuilds the relation cache entries the
other's commits invalidate).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import psycopg

from envforge.db.connection import ServerAddress, open_connection, read_only_snapshot
from envforge.db.copy import CopyResult, CopyTask, run_copy_tasks_shared
from envforge.errors import CopyFailedError

# Below this many bytes (all small tasks together) a second lane's two sessions cost more
# than they save.
MIN_LANE_BYTES = 256 * 1024


# What one more COPY costs besides its bytes (two round trips and a statement on each
# side), as bytes copied in the same time (Pagila-sized clones at fsync on: about 2.5 ms).
TASK_COST_BYTES = 96 * 1024


def split_by_table(tasks: list[CopyTask]) -> tuple[list[CopyTask], list[CopyTask]]:
    """Two lists of about equal cost (bytes, plus TASK_COST_BYTES a task); every task of a
    table in the same one, each list in the tasks' own order (largest first)."""
    sizes: dict[str, int] = {}
    for task in tasks:
        sizes[task.table] = sizes.get(task.table, 0) + task.size_bytes + TASK_COST_BYTES
    lane_of: dict[str, int] = {}
    load = [0, 0]
    for table, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        lane = 0 if load[0] <= load[1] else 1
        lane_of[table] = lane
        load[lane] += size
    return ([t for t in tasks if lane_of[t.table] == 0],
            [t for t in tasks if lane_of[t.table] == 1])


class SecondLane:
    """The second lane's sessions, opened on a thread at once (the caller still reads the
    source meanwhile), its tasks run by :meth:`run`; :meth:`close` closes what is left."""

    def __init__(self, source: ServerAddress, target: ServerAddress, snapshot_id: str,
                 session_settings: str) -> None:
        self._source, self._target = source, target
        self._snapshot_id, self._settings = snapshot_id, session_settings
        self._src_cm: Any = None
        self._src: psycopg.Connection[Any] | None = None
        self._dst: psycopg.Connection[Any] | None = None
        self._error: BaseException | None = None
        self._opened = threading.Thread(target=self._open, name="envforge-lane-open",
                                        daemon=True)
        self._opened.start()

    def _open(self) -> None:
        try:
            self._src_cm = read_only_snapshot(self._source, self._snapshot_id)
            self._src = self._src_cm.__enter__()
            self._dst = open_connection(self._target, autocommit=True)
            self._dst.execute(self._settings)
        except BaseException as e:  # reported by run(), which then runs nothing
            self._error = e

    def ready(self) -> bool:
        """Whether both sessions are open (waits for them)."""
        self._opened.join()
        return self._error is None and self._src is not None and self._dst is not None

    def run(self, key: bytes, tasks: list[CopyTask], out: queue.Queue[Any],
            stop: threading.Event) -> None:
        """Copy ``tasks`` in one target transaction, putting each CopyResult on ``out``;
        then the lane's source session is closed (its snapshot is no longer needed), and
        None (done) or the exception that ended the lane is put on ``out``."""
        try:
            if not self.ready():
                raise CopyFailedError(f"a second copy lane to {self._target.label} could not "
                                      f"be opened: {self._error}")
            assert self._src is not None and self._dst is not None
            for result in run_copy_tasks_shared(self._src, self._target, key, tasks,
                                                self._dst):
                out.put(result)
                if stop.is_set():
                    raise CopyFailedError("stopped: the other copy lane failed")
            out.put(None)
        except BaseException as e:
            out.put(e)
        finally:
            self._close_source()

    def _close_source(self) -> None:
        cm, self._src_cm, self._src = self._src_cm, None, None
        if cm is not None:
            cm.__exit__(None, None, None)

    def close(self) -> None:
        self._opened.join()
        self._close_source()
        if self._dst is not None:
            self._dst.close()
            self._dst = None


def run_on_two_lanes(snap: psycopg.Connection[Any], dst: psycopg.Connection[Any],
                     target: ServerAddress, key: bytes, tasks: list[CopyTask],
                     lane: SecondLane) -> Iterator[CopyResult]:
    """Copy ``tasks``: this thread's share over ``snap`` and ``dst`` (one transaction),
    the other share on ``lane`` in a thread; results as they come. A failure on either lane
    stops the other (after its current table) and is raised here once both have ended."""
    mine, theirs = split_by_table(tasks)
    if not lane.ready() or not theirs:
        yield from run_copy_tasks_shared(snap, target, key, tasks, dst)
        return
    out: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    worker = threading.Thread(target=lane.run, args=(key, theirs, out, stop),
                              name="envforge-copy-lane", daemon=True)
    worker.start()
    lane_done = False

    def from_lane(wait: bool) -> Iterator[CopyResult]:
        """The lane's results so far (``wait``: until it has ended); its failure, raised."""
        nonlocal lane_done
        while (not lane_done) if wait else (not out.empty()):
            item = out.get()
            if isinstance(item, CopyResult):
                yield item
                continue
            lane_done = True  # the lane's last word: None, or what it failed with
            if item is not None:
                raise item

    try:
        for result in run_copy_tasks_shared(snap, target, key, mine, dst):
            yield result
            yield from from_lane(wait=False)
        yield from from_lane(wait=True)
    except BaseException:
        stop.set()
        raise
    finally:
        worker.join()
