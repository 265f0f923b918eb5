"""Names nobody would choose, cloned and branched: quotes, dots, spaces, unicode and 63-byte
identifiers in schemas, tables, columns, sequences and a materialized view, and a target
database name with quotes and a dot. Every statement envforge runs quotes them through
psycopg.sql (envforge.db.identifiers); a hand-made quoting slip shows up here as a syntax
error, a missing table or a raw e-mail in the target."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from envforge.db.branch import branch_database, build_golden, golden_database_name
from envforge.db.clone import CloneRequest, clone_database
from envforge.db.connection import ServerAddress
from envforge.db.identifiers import identifier_text, literal_text
from envforge.db.rules import parse_rules
from envforge.db.safety import drop_owned_database
from envforge.errors import CopyFailedError, UnsafeTargetError

from .conftest import TEST_KEY, create_database, database_exists

pytestmark = pytest.mark.postgres

SCHEMA = 'we"ird.schema'
TABLE = 'tåble "one".x'
EMAIL = 'e-mail "addr"'
LONG = "é" * 31 + "x"  # 63 bytes in UTF-8: PostgreSQL's limit (NAMEDATALEN - 1)
CHILD = "child 表 'q'"
VIEW = 'mv "x".y'
TARGET = 'envforge tést "q".db'

HOSTILE_SQL = f"""
CREATE SCHEMA {identifier_text(SCHEMA)};
CREATE TABLE {identifier_text(SCHEMA, TABLE)} (
    id serial PRIMARY KEY,
    {identifier_text(EMAIL)} text UNIQUE,
    "note.with.dots" text,
    {identifier_text(LONG)} int NOT NULL DEFAULT 7);
CREATE TABLE public.{identifier_text(CHILD)} (
    id int PRIMARY KEY,
    {identifier_text('parent "ref"')} int REFERENCES {identifier_text(SCHEMA, TABLE)} (id),
    "ÄÖÜ name" text);
CREATE INDEX {identifier_text("idx " + LONG[:20])} ON public.{identifier_text(CHILD)}
    ("ÄÖÜ name");
INSERT INTO {identifier_text(SCHEMA, TABLE)} ({identifier_text(EMAIL)}, "note.with.dots")
SELECT 'person' || g || '@example.org', 'note ' || g FROM generate_series(1, 300) g;
INSERT INTO public.{identifier_text(CHILD)}
SELECT g, g, 'name ' || g FROM generate_series(1, 300) g;
CREATE MATERIALIZED VIEW {identifier_text(SCHEMA, VIEW)} AS
    SELECT count(*) AS n FROM public.{identifier_text(CHILD)};
"""

RULES = {"tables": {f"{SCHEMA}.{TABLE}": {EMAIL: "email", "note.with.dots": "passthrough",
                                          LONG: "passthrough"},
                    f"public.{CHILD}": {"ÄÖÜ name": "passthrough"}},
         "strict": True}


def one(address: ServerAddress, query: sql.Composable, params: Any = None) -> Any:
    with psycopg.connect(address.conninfo(), autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture(scope="module")
def hostile_source(pg_server: ServerAddress) -> ServerAddress:
    return create_database(pg_server, "hostile src", HOSTILE_SQL)


def test_identifiers_are_quoted_by_psycopg() -> None:
    assert identifier_text('a"b') == '"a""b"'
    assert identifier_text("s.x", "t") == '"s.x"."t"'
    assert identifier_text("表") == '"表"'
    assert literal_text("it's") == "'it''s'"


def test_a_clone_carries_every_hostile_name_and_anonymises_the_quoted_column(
        hostile_source: ServerAddress) -> None:
    target = hostile_source.with_database(TARGET)
    drop_owned_database(target, TARGET)
    try:
        report = clone_database(CloneRequest(hostile_source, target, parse_rules(RULES),
                                             TEST_KEY, jobs=1))
        assert report.rows == 600
        table = sql.Identifier(SCHEMA, TABLE)
        assert one(target, sql.SQL("SELECT count(*) FROM {}").format(table)) == 300
        assert one(target, sql.SQL("SELECT count(*) FROM {} WHERE {} LIKE 'person%%'")
                   .format(table, sql.Identifier(EMAIL))) == 0
        assert one(target, sql.SQL("SELECT sum({}) FROM {}").format(
            sql.Identifier(LONG), table)) == 7 * 300
        assert one(target, sql.SQL("SELECT n FROM {}").format(
            sql.Identifier(SCHEMA, VIEW))) == 300
        # the serial's sequence carried on: the next row gets id 301
        assert one(target, sql.SQL("INSERT INTO {} ({}) VALUES ('new@example.org') "
                                   "RETURNING id").format(table, sql.Identifier(EMAIL))) == 301
        assert one(target, sql.SQL("SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                                   "AND conrelid = {}::regclass").format(
            sql.Literal(identifier_text("public", CHILD)))) == 1
    finally:
        assert drop_owned_database(target, TARGET)
    assert not database_exists(hostile_source, TARGET)


def test_a_hostile_golden_name_is_slugged_and_branches(hostile_source: ServerAddress) -> None:
    golden = golden_database_name('hostile "src".' + "é" * 40)
    assert len(golden.encode()) <= 63 and golden.isascii()
    server = hostile_source.with_database(golden)
    build_golden(CloneRequest(hostile_source, server, parse_rules(RULES), TEST_KEY), keep=0)
    try:
        branch_database(hostile_source, golden, TARGET, {"environment": "hostile"})
        assert one(hostile_source.with_database(TARGET), sql.SQL("SELECT count(*) FROM {}")
                   .format(sql.Identifier("public", CHILD))) == 300
        with pytest.raises(UnsafeTargetError):  # never replaced by an environment's database
            branch_database(hostile_source, TARGET, golden, {"environment": "x"}, replace=True)
    finally:
        drop_owned_database(hostile_source, TARGET)
        drop_owned_database(hostile_source, golden)


def test_two_tables_that_rules_would_name_alike_are_refused_before_anything_is_made(
        pg_server: ServerAddress) -> None:
    source = create_database(pg_server, "dotted src", """
        CREATE SCHEMA "a.b"; CREATE SCHEMA a;
        CREATE TABLE "a.b".c (v text); CREATE TABLE a."b.c" (w int);
        INSERT INTO "a.b".c VALUES ('one'); INSERT INTO a."b.c" VALUES (2);""")
    target = source.with_database("envforge_dotted")
    with pytest.raises(CopyFailedError, match="cannot tell them apart") as refused:
        clone_database(CloneRequest(source, target, parse_rules({}), TEST_KEY))
    assert '"a.b"."c"' in str(refused.value) and '"a"."b.c"' in str(refused.value)
    assert not database_exists(pg_server, "envforge_dotted")
