"""Binary COPY gives the very rows text COPY gives, on a real server, for every kind of column a
table can have; tables whose binary form would carry their database's OIDs stay in text; and the
date codec prints what PostgreSQL prints."""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pytest

from envforge.db import copyrows_c
from envforge.db.catalog import read_catalog
from envforge.db.connection import ServerAddress, read_only_snapshot
from envforge.db.copy import run_copy_task
from envforge.db.copy_binary import date_binary, date_text
from envforge.db.coverage import resolve_coverage
from envforge.db.rules import parse_rules
from envforge.db.tasks import plan_tasks
from envforge.settings import environ_overrides

from .conftest import TEST_KEY, create_database
from .test_clone import clone, rows, table_digest

pytestmark = pytest.mark.postgres

SCHEMA = r"""
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN short_text AS varchar(12);
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TABLE people (
    id int PRIMARY KEY, email text, nick short_text, code char(6), born date, seen timestamptz,
    local_seen timestamp, span interval, at_time time, ident uuid, raw bytea, doc jsonb,
    doc_text json, amount numeric(12, 3), ratio float8, flag bool, tags text[], counts int[],
    feeling mood, small int2, big int8, level positive, net inet, block cidr, mac macaddr,
    words tsvector, price money, spot point, note text);
INSERT INTO people SELECT g,
    CASE WHEN g % 7 = 0 THEN NULL ELSE 'user' || g || '@example.org' END,
    'nick' || g, 'c' || g % 100, CASE g % 5 WHEN 0 THEN NULL WHEN 1 THEN 'infinity'
        WHEN 2 THEN date '0044-03-15 BC' ELSE date '1950-01-01' + g END,
    timestamptz '2024-02-29 12:34:56.789+01' + g * interval '1 hour',
    timestamp '1999-12-31 23:59:59.999999', interval '1 year 2 mons 3 days 04:05:06.7',
    time '13:14:15.16', md5(g::text)::uuid, decode(md5(g::text), 'hex'),
    jsonb_build_object('e', 'user' || g || '@example.org', 'n', g),
    '{"k": [1, 2, {"x": null}]}', CASE WHEN g % 11 = 0 THEN 'NaN' ELSE g * 1.5 END,
    CASE g % 3 WHEN 0 THEN 'Infinity' WHEN 1 THEN 'NaN' ELSE g / 7.0 END, g % 2 = 0,
    ARRAY['a' || g, NULL, E'with\ttab'], ARRAY[g, -g],
    (ARRAY['sad', 'ok', 'happy']::mood[])[1 + g % 3],
    g % 32000, g::int8 * 1000000000, 1 + g, ('10.0.' || g % 256 || '.1')::inet,
    ('10.' || g % 256 || '.0.0/16')::cidr, '08:00:2b:01:02:03',
    to_tsvector('simple', 'word ' || g), (g * 1.25)::numeric::money, point(g, -g),
    E'tab\there\nnew line\\back slash ünïcödé ' || g
FROM generate_series(1, 3000) g;
CREATE TABLE with_oids_inside (id int PRIMARY KEY, moods mood[], twin pair, kind regclass);
INSERT INTO with_oids_inside SELECT g, ARRAY['ok', 'sad']::mood[], ROW(g, 'x' || g)::pair,
    'people'::regclass FROM generate_series(1, 50) g;
"""
RULES = {"tables": {
    "public.people": {"email": "email", "nick": "hash", "born": "date_of_birth",
                      "note": "scrub", "code": {"transform": "mask", "keep_start": 1},
                      # reviewed: made-up test values
                      "doc": "passthrough", "net": "passthrough",
                      "block": "passthrough"},
    "public.with_oids_inside": {"id": "passthrough"},
}}


@pytest.fixture(scope="module")
def source(pg_server: ServerAddress) -> ServerAddress:
    return create_database(pg_server, "binary_src", SCHEMA)


def test_binary_and_text_clones_hold_the_same_rows(source: ServerAddress) -> None:
    rules = parse_rules(RULES)
    with read_only_snapshot(source) as snap:
        catalog = read_catalog(snap)
    coverage = resolve_coverage(rules, catalog, "rules")
    binary = {t.table: t.binary for t in plan_tasks(catalog, coverage, rules, None, True)}
    assert binary == {"public.people": True, "public.with_oids_inside": False}
    assert not any(t.binary for t in plan_tasks(catalog, coverage, rules, None, False))

    in_binary, _ = clone(source, "binary_on", rules=rules, jobs=2)
    with environ_overrides({"ENVFORGE_DB_BINARY_COPY": "false"}):
        in_text, _ = clone(source, "binary_off", rules=rules, jobs=2)
    for table in ("people", "with_oids_inside"):
        assert table_digest(in_binary, table) == table_digest(in_text, table)
    untouched = ("id, seen, local_seen, span, at_time, ident, raw, doc, doc_text, amount, ratio,"
                 " flag, tags, counts, feeling, small, big, level, net, block, mac, words, "
                 "price, spot::text")
    query = f"SELECT ROW({untouched})::text FROM people ORDER BY id"  # text: NaN = NaN
    assert rows(in_binary, query) == rows(source, query)
    changed = rows(in_binary, "SELECT count(*) FROM people p WHERE email LIKE 'user%'")
    assert changed == [(0,)]
    nulls = "SELECT count(*) FILTER (WHERE born IS NULL), count(*) FILTER (WHERE email IS NULL) "
    assert rows(in_binary, nulls + "FROM people") == rows(source, nulls + "FROM people")


def test_dates_print_as_postgresql_prints_them(pg_server: ServerAddress) -> None:
    values = ["2000-01-01", "1999-12-31", "0001-01-01", "0001-12-31 BC", "4714-11-24 BC",
              "0401-02-29 BC", "9999-12-31", "10000-01-01", "5874897-12-31", "infinity",
              "-infinity", "1970-01-01", "2024-02-29"]
    with psycopg.connect(pg_server.conninfo()) as conn:
        conn.execute("SET DateStyle = ISO")
        texts = [r[0] for r in conn.execute(
            "SELECT d::text FROM unnest(%s::date[]) WITH ORDINALITY u(d, i) ORDER BY i",
            (values,)).fetchall()]
        with conn.cursor().copy("COPY (SELECT d FROM unnest(%s::date[]) WITH ORDINALITY "
                                "u(d, i) ORDER BY i) TO STDOUT (FORMAT binary)",
                                (values,)) as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
    columns, _, count, ended = copyrows_c.scan(data, 19, 1, (0,))
    assert ended and count == len(values)
    assert [date_text(raw) for raw in columns[0]] == texts
    assert [date_binary(text) for text in texts] == columns[0]


@pytest.mark.parametrize("reader", ["psql", "psycopg"])
def test_a_large_task_copies_in_binary_through_either_reader(
        source: ServerAddress, pg_server: ServerAddress, reader: str) -> None:
    """The path of tasks over 2 MB (a worker's own sessions, the source read by psql or by
    psycopg): the same rows as a text copy of the same task."""
    columns = ("id", "email", "born", "seen", "amount", "tags", "feeling", "note")
    ddl = ("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); CREATE TABLE people (id int, "
           "email text, born date, seen timestamptz, amount numeric(12, 3), tags text[], "
           "feeling mood, note text);")
    rules = parse_rules({"tables": {"public.people": {"email": "email", "born": "date_of_birth",
                                                       "note": "scrub"}}})
    with read_only_snapshot(source) as snap:
        catalog = read_catalog(snap)
        snapshot_id = str(snap.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
        coverage = resolve_coverage(rules, catalog, "rules")
        task = next(t for t in plan_tasks(catalog, coverage, rules, None, True)
                    if t.table == "public.people")
        task = replace(task, columns=columns, fields=tuple(
            replace(f, index=columns.index(f.column.name)) for f in task.fields
            if f.column.name in columns), where="id % 2 = 0")
        assert task.binary
        digests = []
        for binary in (True, False):
            target = create_database(pg_server, f"large_{reader}_{binary}", ddl)
            with environ_overrides({"ENVFORGE_DB_READER": reader}):
                result = run_copy_task(source, target, snapshot_id, TEST_KEY,
                                       replace(task, binary=binary))
            assert result.rows == 1500
            digests.append(table_digest(target, "people"))
    assert digests[0] == digests[1]
    assert rows(target, "SELECT count(*) FROM people WHERE email LIKE 'user%'") == [(0,)]
