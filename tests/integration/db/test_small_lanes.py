"""A failure on the small tables' second copy lane (envforge/db/small_lanes.py) fails the
clone like one on the first: the error names the table, and the target is dropped."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from envforge.db import small_lanes
from envforge.db.clone import CloneRequest, clone_database
from envforge.db.connection import ServerAddress
from envforge.db.copy import CopyResult, CopyTask
from envforge.db.rules import load_rules
from envforge.db.safety import drop_owned_database
from envforge.errors import CopyFailedError

from .conftest import HERE, TEST_KEY, database_exists

pytestmark = pytest.mark.postgres


def test_a_failing_second_lane_fails_the_clone_and_drops_the_target(
        source_db: ServerAddress, monkeypatch: pytest.MonkeyPatch) -> None:
    target = source_db.with_database("envforge_lane_failure")
    drop_owned_database(target, target.dbname)
    real = small_lanes.run_copy_tasks_shared
    lanes: list[list[str]] = []
    started = itertools.count()

    def second_lane_fails(src: psycopg.Connection[Any], address: ServerAddress, key: bytes,
                          tasks: list[CopyTask], dst: psycopg.Connection[Any] | None = None
                          ) -> Iterator[CopyResult]:
        lanes.append([t.table for t in tasks])
        if next(started) == 1:  # whichever lane starts second fails: either must fail all
            raise CopyFailedError(f"copying {tasks[0].label} failed: injected")
        yield from real(src, address, key, tasks, dst)

    monkeypatch.setattr(small_lanes, "run_copy_tasks_shared", second_lane_fails)
    with pytest.raises(CopyFailedError, match="injected"):
        clone_database(CloneRequest(source_db, target, load_rules(HERE / "realistic_rules.yaml"),
                                    TEST_KEY, jobs=2, parallel_min_bytes=0))
    assert len(lanes) == 2 and lanes[0] and lanes[1]
    assert not set(lanes[0]) & set(lanes[1])  # a table is copied on one lane only
    assert not database_exists(source_db, target.dbname)
