"""Unique keys stay unique when transformed values collide: collisions are FORCED here (a
4-hex-digit hash over 1000 rows, e-mails differing only in case, and a test hook that shrinks
the e-mail fake to 4096 outputs), so the clone would fail on its unique indexes without
resolution."""

from __future__ import annotations

from collections import Counter
from typing import Any

import psycopg
import pytest

from envforge.db import copy as copy_module
from envforge.db import fakes
from envforge.db.catalog import Column
from envforge.db.clone import CloneRequest, clone_database
from envforge.db.connection import ServerAddress
from envforge.db.rules import parse_rules
from envforge.db.transformers import build_transform
from envforge.errors import CopyFailedError

from .conftest import TEST_KEY, create_database, database_exists

pytestmark = pytest.mark.postgres

PEOPLE = 1000
SCHEMA = f"""
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL UNIQUE, code text UNIQUE,
                     tenant int NOT NULL, handle text NOT NULL, UNIQUE (tenant, handle));
CREATE TABLE orders (id int PRIMARY KEY, person_email text NOT NULL REFERENCES people (email),
                     contact text);
INSERT INTO people
  SELECT i, CASE WHEN i = 1 THEN 'Mixed.Case@corp.test' WHEN i = 2 THEN 'mixed.case@corp.test'
                 ELSE 'user' || i || '@corp.test' END,
         'C' || i, i % 2, 'h' || i
  FROM generate_series(1, {PEOPLE}) i;
INSERT INTO orders SELECT j, p.email, p.email FROM generate_series(1, 3000) j
  JOIN people p ON p.id = 1 + j % {PEOPLE};
"""
RULES = parse_rules({"version": 1, "strict": False, "tables": {
    "people": {"email": "email", "code": {"transform": "hash", "length": 4},
               "handle": {"transform": "hash", "length": 4}},
    "orders": {"contact": "email"}}})


def small_email(d: bytes) -> str:
    """Test hook: 4096 possible e-mails, so 1000 distinct inputs are bound to collide."""
    return f"u{int.from_bytes(d[:2], 'big') % 4096}@example.com"


@pytest.fixture(scope="module")
def collide_db(pg_server: ServerAddress) -> ServerAddress:
    return create_database(pg_server, "collide_src", SCHEMA)


def _value_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``fakes.email`` hooked: no memos kept for later tests, and no column loops (they
    build e-mails from their own bytes tables, not through ``fakes.email``)."""
    monkeypatch.setattr(copy_module, "_MEMO_CACHE", {})
    monkeypatch.setattr(copy_module, "build_ascii_column", lambda *args: None)


def _clone(source: ServerAddress, name: str, jobs: int = 1) -> None:
    clone_database(CloneRequest(source, source.with_database(name), RULES, TEST_KEY, jobs=jobs,
                                replace=True, parallel_min_bytes=0))


def _rows(db: ServerAddress, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.conninfo()) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def _base_outputs(source: ServerAddress, column: str, transform: str, length: int | None
                  ) -> list[str | None]:
    """What each value becomes without resolution (to prove a collision really happened)."""
    rule = RULES.tables["public.people"].columns[column]
    assert rule.transform == transform and rule.length == length
    fn = build_transform(rule, Column(column, "text", "text", "S", True, False), TEST_KEY)
    assert fn is not None
    return [fn(v) for (v,) in _rows(source, f"SELECT {column} FROM people ORDER BY id")]


def test_forced_collisions_are_resolved_deterministically(
        collide_db: ServerAddress, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fakes, "email", small_email)
    _value_path_only(monkeypatch)
    code_outputs = _base_outputs(collide_db, "code", "hash", 4)
    email_outputs = _base_outputs(collide_db, "email", "email", None)
    # Without resolution both unique columns would get duplicates (the old failure).
    assert max(Counter(code_outputs).values()) > 1
    assert max(Counter(email_outputs).values()) > 1
    assert email_outputs[0] == email_outputs[1]  # 'Mixed.Case@' and 'mixed.case@'

    _clone(collide_db, "envforge_collide_a")
    _clone(collide_db, "envforge_collide_b")
    a, b = collide_db.with_database("envforge_collide_a"), collide_db.with_database(
        "envforge_collide_b")
    people_sql = "SELECT id, email, code, tenant, handle FROM people ORDER BY id"
    people = _rows(a, people_sql)
    assert len(people) == PEOPLE
    assert people == _rows(b, people_sql)  # same input and key: same output, every run
    assert len({p[1] for p in people}) == PEOPLE and len({p[2] for p in people}) == PEOPLE
    assert len({(p[3], p[4]) for p in people}) == PEOPLE
    assert all(p[1].endswith("@example.com") and len(p[2]) == 4 for p in people)
    # Rows whose output did not collide keep the plain transform's output.
    counts = Counter(code_outputs)
    kept = [i for i, out in enumerate(code_outputs) if counts[out] == 1]
    assert kept and all(people[i][2] == code_outputs[i] for i in kept)
    # Joins on the e-mail still match: the foreign key column and a plain e-mail column.
    joined = _rows(a, "SELECT count(*) FILTER (WHERE o.contact = o.person_email), count(*) "
                      "FROM orders o JOIN people p ON p.email = o.person_email")
    assert joined == [(3000, 3000)]
    assert _rows(a, "SELECT count(*) FROM orders WHERE person_email LIKE '%corp.test'") == [(0,)]


def test_resolution_is_the_same_with_parallel_workers(collide_db: ServerAddress) -> None:
    # Spawned workers and the real e-mail fake: the hash resolutions must not depend on them.
    _clone(collide_db, "envforge_collide_serial", jobs=1)
    _clone(collide_db, "envforge_collide_parallel", jobs=2)
    sql = "SELECT id, email, code, handle FROM people ORDER BY id"
    serial = _rows(collide_db.with_database("envforge_collide_serial"), sql)
    assert serial == _rows(collide_db.with_database("envforge_collide_parallel"), sql)
    assert len({r[2] for r in serial}) == PEOPLE


def test_output_space_too_small_is_a_clear_error(pg_server: ServerAddress,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fakes, "email", lambda d: f"u{d[0] % 16}@example.com")
    _value_path_only(monkeypatch)
    source = create_database(pg_server, "collide_small", "CREATE TABLE t (k text PRIMARY KEY);"
                             "INSERT INTO t SELECT 'k' || i FROM generate_series(1, 20) i;")
    rules = parse_rules({"version": 1, "strict": False, "tables": {"t": {"k": "email"}}})
    with pytest.raises(CopyFailedError) as caught:
        clone_database(CloneRequest(source, source.with_database("envforge_collide_small"),
                                    rules, TEST_KEY, jobs=1))
    assert "t (k)" in str(caught.value) and "output space is too small" in str(caught.value)
    assert not database_exists(pg_server, "envforge_collide_small")
