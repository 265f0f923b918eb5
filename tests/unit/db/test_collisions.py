"""Collision resolution pieces that need no database: resolved values and the column moved."""

from __future__ import annotations

import pytest

from envforge.db.catalog import Column
from envforge.db.collisions import UniqueKey, _column_to_move
from envforge.db.rules import ColumnRule
from envforge.db.transformers import Keyed, build_transform, resolution_id
from envforge.errors import CopyFailedError

KEY = b"unit-test-key-0123456789abcdef"
TEXT = Column("email", "text", "text", "S", True, False, unique=True)


def _rule(kind: str) -> ColumnRule:
    return ColumnRule(transform=kind)


def test_a_resolved_value_changes_and_no_other_value_does() -> None:
    plain = build_transform(_rule("email"), TEXT, KEY)
    rid = resolution_id(Keyed(KEY, "unique-resolution"), "Ann@corp.test")
    resolved = build_transform(_rule("email"), TEXT, KEY, {rid: 1})
    again = build_transform(_rule("email"), TEXT, KEY, {rid: 1})
    assert plain is not None and resolved is not None and again is not None
    # Case-only variants share the plain fake; the resolved one moves, the other stays.
    assert plain("Ann@corp.test") == plain("ann@corp.test")
    assert resolved("Ann@corp.test") != plain("Ann@corp.test")
    assert resolved("ann@corp.test") == plain("ann@corp.test")
    assert resolved("Ann@corp.test") == again("Ann@corp.test")  # deterministic
    assert resolved("Ann@corp.test") == plain("Ann@corp.test\0" + "1")
    other = build_transform(_rule("email"), TEXT, b"another-key-0123456789abcdefgh", {rid: 1})
    assert other is not None and other("Ann@corp.test") != resolved("Ann@corp.test")


def test_resolutions_only_apply_to_resolvable_kinds() -> None:
    column = Column("name", "text", "text", "S", False, False)
    rid = resolution_id(Keyed(KEY, "unique-resolution"), "Ann")
    plain = build_transform(_rule("first_name"), column, KEY)
    resolved = build_transform(_rule("first_name"), column, KEY, {rid: 3})
    assert plain is not None and resolved is not None
    assert plain("Ann") == resolved("Ann")


def test_the_moved_column_is_a_resolvable_one_that_differs() -> None:
    tenant = Column("tenant", "int4", "int4", "N", True, False)
    handle = Column("handle", "text", "text", "S", True, False)
    key = UniqueKey("public.t", '"public"."t"', (tenant, handle, TEXT),
                    (None, _rule("hash"), _rule("email")))
    assert _column_to_move(key, ("1", "a", "x@y"), ("1", "b", "x@y")) == 1
    assert _column_to_move(key, ("1", "a", "x@y"), ("1", "a", "X@y")) == 2
    masked = UniqueKey("public.t", '"public"."t"', (tenant, handle), (None, _rule("mask")))
    with pytest.raises(CopyFailedError, match=r"public.t \(tenant, handle\).*'mask'"):
        _column_to_move(masked, ("1", "ab"), ("1", "ac"))
