"""One refresh for many requests (envforge/summary/coalesce.py): none lost, none run twice
for the same requests, one run not held for a whole burst."""

from __future__ import annotations

import fcntl
from pathlib import Path

from envforge.summary.coalesce import coalesced


def test_a_lone_request_refreshes_once_and_leaves_no_mark(tmp_path: Path) -> None:
    ran: list[str] = []
    assert coalesced(tmp_path / "c", lambda: ran.append("a")) == 1
    assert ran == ["a"] and not (tmp_path / "c" / "pending").exists()
    assert coalesced(tmp_path / "c", lambda: ran.append("b")) == 1  # the next asks again
    assert ran == ["a", "b"]


def test_a_request_while_another_refreshes_is_covered_by_the_holder(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    ran: list[str] = []
    answers: list[int] = []

    def holder_refresh() -> None:
        ran.append("holder")
        if len(ran) == 1:  # a second run finishes while the first refreshes
            answers.append(coalesced(folder, lambda: ran.append("second")))

    assert coalesced(folder, holder_refresh) == 2
    assert answers == [0]  # the second returned at once...
    assert ran == ["holder", "holder"]  # ...and the holder refreshed again for it
    assert not (folder / "pending").exists()


def test_a_held_lock_leaves_the_request_marked_for_the_holder(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    ran: list[str] = []
    with open(folder / "lock", "a") as other:  # another process refreshing
        fcntl.flock(other, fcntl.LOCK_EX)
        assert coalesced(folder, lambda: ran.append("x")) == 0
        fcntl.flock(other, fcntl.LOCK_UN)
    assert ran == [] and (folder / "pending").exists()  # not lost: still marked
    assert coalesced(folder, lambda: ran.append("y")) == 1 and ran == ["y"]


def test_a_holder_stops_after_its_budget_and_the_next_run_takes_over(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    ran: list[str] = []

    def busy() -> None:
        ran.append("first")
        coalesced(folder, lambda: ran.append("never"))  # a request during the round

    assert coalesced(folder, busy, budget_seconds=0.0) == 1
    assert ran == ["first"] and (folder / "pending").exists()  # left for the next run
    assert coalesced(folder, lambda: ran.append("next")) == 1
    assert ran == ["first", "next"] and not (folder / "pending").exists()


def test_a_failing_refresh_is_raised_and_releases_the_lock(tmp_path: Path) -> None:
    folder = tmp_path / "c"

    def boom() -> None:
        raise RuntimeError("refresh failed")

    try:
        coalesced(folder, boom)
    except RuntimeError as e:
        assert str(e) == "refresh failed"
    else:
        raise AssertionError("the failure was swallowed")
    assert coalesced(folder, lambda: None) == 1  # the lock was let go
