"""Golden names, ages and identities (no server needed)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from envforge.db.branch import (
    GOLDEN_PREFIX,
    golden_database_name,
    parse_age,
    staging_database_name,
)
from envforge.db.identity import GoldenIdentity, key_fingerprint, rules_digest
from envforge.db.rules import parse_rules
from envforge.errors import UnsafeTargetError


def test_golden_names_fit_63_bytes_and_long_names_never_share_one() -> None:
    assert golden_database_name("Shop-Prod") == "envforge_golden_shop_prod"
    a = golden_database_name("warehouse_" + "x" * 60 + "_eu")
    b = golden_database_name("warehouse_" + "x" * 60 + "_us")
    assert a != b  # cut to fit, but a digest of the whole name keeps them apart
    assert len(a) <= 63 and len(b) <= 63 and a.startswith(GOLDEN_PREFIX)
    with pytest.raises(UnsafeTargetError):
        golden_database_name("--")


def test_staging_copies_have_names_no_golden_name_can_produce() -> None:
    golden = golden_database_name("shop")
    staging = staging_database_name(golden)
    assert not staging.startswith(GOLDEN_PREFIX)
    assert golden_database_name("shop_next") != staging
    assert staging_database_name(golden_database_name("shop2")) != staging


def test_rules_digest_ignores_spelling_but_not_meaning() -> None:
    short = parse_rules({"tables": {"users": {"email": "email"}}})
    long = parse_rules({"tables": {"public.users": {"columns": {"email": {
        "transform": "email"}}}}, "strict": True})
    changed = parse_rules({"tables": {"users": {"email": "hash"}}})
    assert rules_digest(short) == rules_digest(long)
    assert rules_digest(short) != rules_digest(changed)
    assert rules_digest(short) != rules_digest(parse_rules({"tables": {}}))


def test_key_fingerprint_tells_keys_apart_without_showing_them() -> None:
    key = b"k" * 32
    assert key_fingerprint(key) == key_fingerprint(b"k" * 32)
    assert key_fingerprint(key) != key_fingerprint(b"j" * 32)
    assert "k" * 8 not in key_fingerprint(key)


def test_identity_differences_and_markers() -> None:
    one = GoldenIdentity("sysid:1", "shop", "r1", "k1", "s1")
    assert one.differences(GoldenIdentity("sysid:1", "shop", "r2", "k1", "s1")) == [
        "anonymisation rules"]
    assert not one.same_source(GoldenIdentity("sysid:2", "shop", "r1", "k1", "s1"))
    assert GoldenIdentity.from_marker({"identity": one.as_marker()}) == one
    assert GoldenIdentity.from_marker({"source": "x"}) is None


def test_ages() -> None:
    assert parse_age("20h") == timedelta(hours=20)
    assert parse_age("90m") == timedelta(minutes=90)
    assert parse_age(" 7d ") == timedelta(days=7)
    with pytest.raises(ValueError, match="like 90m"):
        parse_age("tomorrow")
