"""Golden names and ages (no server needed)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from envforge.db.branch import golden_database_name, parse_age
from envforge.errors import UnsafeTargetError


def test_golden_names_fit_the_swap_suffixes_in_63_bytes() -> None:
    assert golden_database_name("Shop-Prod") == "envforge_golden_shop_prod"
    long = golden_database_name("x" * 200)
    assert len(long + "_prev_20260101000000") <= 63 and long.startswith("envforge_golden_")
    with pytest.raises(UnsafeTargetError):
        golden_database_name("--")


def test_ages() -> None:
    assert parse_age("20h") == timedelta(hours=20)
    assert parse_age("90m") == timedelta(minutes=90)
    assert parse_age(" 7d ") == timedelta(days=7)
    with pytest.raises(ValueError, match="like 90m"):
        parse_age("tomorrow")
