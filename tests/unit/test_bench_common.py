"""bench.common: the timing, medians and docs-section writing every benchmark shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import median, median_seconds, time_call, write_docs_section


def test_a_section_is_appended_then_replaced_leaving_the_others(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\n<!-- db:start -->\nold db\n<!-- db:end -->\n")
    write_docs_section("cluster", "## Cluster feedback\n\n| a | 1 ms |\n", page)
    write_docs_section("cluster", "## Cluster feedback\n\n| a | 2 ms |", page)
    assert page.read_text() == (
        "# Benchmarks\n\n<!-- db:start -->\nold db\n<!-- db:end -->\n\n"
        "<!-- cluster:start -->\n## Cluster feedback\n\n| a | 2 ms |\n<!-- cluster:end -->\n")


def test_a_missing_page_is_created(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "benchmarks.md"
    write_docs_section("gitops", "text", page)
    assert page.read_text() == "# Benchmarks\n\n<!-- gitops:start -->\ntext\n<!-- gitops:end -->\n"


def test_timing_and_medians() -> None:
    result, seconds = time_call(lambda: sum(range(1000)))
    assert result == 499500 and seconds >= 0
    calls: list[int] = []
    assert median_seconds(lambda: calls.append(1), reps=0) >= 0 and calls == [1]
    assert median([3.0, 1.0, 2.0]) == 2.0
    with pytest.raises(ValueError, match="no measurements"):
        median([])
