"""Keep unique keys unique after anonymisation: find collisions, resolve them deterministically.

A fake e-mail, IBAN or hash has a fixed-size output, so two different inputs can (very rarely,
or often with a short ``hash`` length) give the same output. After the rows are copied and
before indexes are built, every unique key (unique index or primary key, composite ones
included) with a transformed column is grouped on the target. For each output shared by
several source rows, the rows are read back from the clone's snapshot and ordered by a keyed
digest of their values; the first keeps its output, each other one gets the first free output
derived from ``value NUL 1``, ``value NUL 2``, ... (its *attempt*). The attempts, keyed by a
digest of the exact value (never the value), then apply to that value in every column with the
same transformer, so joins still match; the tables using that transformer are copied again
with them (the target has no constraints yet). The result depends only on the source data and
the key: the same clone gives the same output every time, whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from envforge.db.catalog import Catalog, Column
from envforge.db.coverage import CoverageMap
from envforge.db.identifiers import identifier
from envforge.db.rules import ColumnRule
from envforge.db.transformers import (
    RESOLVABLE,
    Keyed,
    ValueTransform,
    build_transform,
    resolution_id,
)
from envforge.errors import CopyFailedError

Resolutions = dict[str, dict[bytes, int]]  # kind -> resolution id -> attempt
MAX_ATTEMPTS = 64  # per value: a free output is found long before with any sane output space
_GROUP_LIMIT = 10_000  # duplicate outputs handled per key and round


@dataclass(frozen=True)
class UniqueKey:
    """A unique index or primary key of a logical table with at least one transformed column."""

    table: str  # schema.table
    table_sql: str
    columns: tuple[Column, ...]
    rules: tuple[ColumnRule | None, ...]  # per column; None: copied as is

    @property
    def label(self) -> str:
        return f"{self.table} ({', '.join(c.name for c in self.columns)})"


def unique_keys(conn: psycopg.Connection[Any], catalog: Catalog,
                coverage: CoverageMap) -> list[UniqueKey]:
    """Unique keys (plain column lists, not partial or expression indexes) of the copied tables
    whose columns include one a rule transforms."""
    rows = conn.execute(
        """SELECT n.nspname || '.' || c.relname,
                  array_agg(a.attname::text ORDER BY k.ord)
           FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
           WHERE i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
             AND k.ord <= i.indnkeyatts
           GROUP BY i.indexrelid, n.nspname, c.relname""").fetchall()
    keys: list[UniqueKey] = []
    for table_name, column_names in rows:
        table = catalog.tables.get(table_name)
        if table is None:
            continue  # leaf partitions (their root is checked) and tables outside the catalog
        covered = coverage.get(table_name, {})
        columns, rules = [], []
        for name in column_names:
            column = table.column(name)
            cov = covered.get(name)
            if column is None:
                break
            columns.append(column)
            rules.append(cov.rule if cov and cov.rule.transform != "passthrough" else None)
        if len(columns) == len(column_names) and any(rules):
            keys.append(UniqueKey(table_name, table.sql, tuple(columns), tuple(rules)))
    return keys


def duplicate_outputs(conn: psycopg.Connection[Any], key: UniqueKey) -> set[tuple[str, ...]]:
    """Key values (text form) held by more than one target row (NULLs never collide)."""
    cols = _text_columns(key)
    not_null = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(identifier(c.name))
                                     for c in key.columns)
    rows = conn.execute(sql.SQL("SELECT {cols} FROM {table} WHERE {not_null} GROUP BY {cols} "
                                "HAVING count(*) > 1 LIMIT {limit}").format(
        cols=cols, table=sql.SQL(key.table_sql), not_null=not_null,
        limit=sql.Literal(_GROUP_LIMIT))).fetchall()
    return {tuple(r) for r in rows}


class _KeyFunctions:
    """The output of every key column for a source row, under the current resolutions."""

    def __init__(self, key: UniqueKey, secret: bytes, resolutions: Resolutions) -> None:
        self.key, self.secret = key, secret
        self.fns: list[ValueTransform | None] = [
            None if rule is None else build_transform(rule, column, secret,
                                                      resolutions.get(rule.transform))
            for column, rule in zip(key.columns, key.rules, strict=True)]

    def output(self, values: tuple[str | None, ...]) -> tuple[str | None, ...]:
        return tuple(v if fn is None or v is None else fn(v)
                     for fn, v in zip(self.fns, values, strict=True))


def resolve_round(source: psycopg.Connection[Any], target: psycopg.Connection[Any],
                  key: UniqueKey, duplicates: set[tuple[str, ...]], secret: bytes,
                  resolutions: Resolutions) -> set[str]:
    """Give every losing row of each duplicate group a free output; update ``resolutions`` in
    place and return the transformer kinds whose resolutions changed."""
    functions = _KeyFunctions(key, secret, resolutions)
    ident = Keyed(secret, "unique-resolution")
    groups: dict[tuple[str | None, ...], set[tuple[str | None, ...]]] = {}
    for values in _source_rows(source, key):
        out = functions.output(values)
        if out in duplicates:
            groups.setdefault(out, set()).add(values)
    taken: set[tuple[str | None, ...]] = set()
    changed: set[str] = set()
    for out in sorted(groups, key=repr):
        ranked = sorted(groups[out], key=lambda vs: [b"" if v is None else
                                                     resolution_id(ident, v) for v in vs])
        for loser in ranked[1:]:
            index = _column_to_move(key, ranked[0], loser)
            rule = key.rules[index]
            value = loser[index]
            assert rule is not None and value is not None
            rid = resolution_id(ident, value)
            kind_map = resolutions.setdefault(rule.transform, {})
            attempt = kind_map.get(rid, 0)
            for _ in range(MAX_ATTEMPTS):
                attempt += 1
                kind_map[rid] = attempt
                candidate = _KeyFunctions(key, secret, resolutions).output(loser)
                if candidate not in taken and not _held(target, key, candidate):
                    break
            else:
                raise CopyFailedError(
                    f"unique key {key.label}: no free output for a value of "
                    f"{key.columns[index].name} after {MAX_ATTEMPTS} attempts; the "
                    f"{rule.transform!r} output space is too small (e.g. raise 'length')")
            taken.add(candidate)
            changed.add(rule.transform)
    return changed


def _column_to_move(key: UniqueKey, winner: tuple[str | None, ...],
                    loser: tuple[str | None, ...]) -> int:
    for i, rule in enumerate(key.rules):
        if rule is not None and rule.transform in RESOLVABLE and loser[i] is not None \
                and loser[i] != winner[i]:
            return i
    kinds = sorted({r.transform for r in key.rules if r is not None})
    raise CopyFailedError(
        f"unique key {key.label}: different source rows get the same output from "
        f"{', '.join(map(repr, kinds))}, which cannot be resolved; use hash or email on "
        f"these columns")


def _source_rows(conn: psycopg.Connection[Any], key: UniqueKey
                 ) -> Iterator[tuple[str | None, ...]]:
    """The key columns of every source row (text form), streamed with a server-side cursor."""
    with conn.cursor(name="envforge_unique_keys") as cur:
        cur.itersize = 5000
        cur.execute(sql.SQL("SELECT {} FROM {}").format(_text_columns(key),
                                                        sql.SQL(key.table_sql)))
        for row in cur:
            yield tuple(row)


def _held(conn: psycopg.Connection[Any], key: UniqueKey,
          candidate: tuple[str | None, ...]) -> bool:
    """Whether a target row already holds this key value."""
    if any(v is None for v in candidate):
        return False
    where = sql.SQL(" AND ").join(sql.SQL("{}::text = %s").format(identifier(c.name))
                                  for c in key.columns)
    row = conn.execute(sql.SQL("SELECT 1 FROM {} WHERE {} LIMIT 1").format(
        sql.SQL(key.table_sql), where), candidate).fetchone()
    return row is not None


def _text_columns(key: UniqueKey) -> sql.Composed:
    return sql.SQL(", ").join(sql.SQL("{}::text").format(identifier(c.name))
                              for c in key.columns)
