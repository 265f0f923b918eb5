"""Subsetting: which rows to copy so that every copied row's parents are copied too.

Rows are identified by (leaf table, ctid), stable inside the clone's snapshot, so tables
without a primary key work as well. Start rows come from ``percent`` (deterministic
``TABLESAMPLE BERNOULLI ... REPEATABLE``) or ``where``; from rows reached downwards, children
follow (at most ``children_limit`` per parent row on average, per foreign key); from every
selected row, parents follow (upward closure), through self-references and cycles, until
nothing new is found. The COPY workers then read exactly these ctids.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import psycopg

from envforge.db.catalog import Catalog, ForeignKey
from envforge.db.identifiers import identifier_text
from envforge.db.rules import Rules, qualify
from envforge.errors import RulesError

_BATCH = 5000


@dataclass
class RowSelection:
    rows: dict[str, set[str]] = field(default_factory=dict)  # leaf qualified -> ctids
    leaf_owner: dict[str, str] = field(default_factory=dict)  # leaf -> logical table
    reached: set[str] = field(default_factory=set)  # logical tables reached

    def rows_for(self, leaf: str) -> list[str] | None:
        """ctids to copy from ``leaf``; None when its table was not reached at all."""
        if self.leaf_owner.get(leaf) not in self.reached:
            return None
        return sorted(self.rows.get(leaf, ()))

    def count(self, table: str) -> int:
        return sum(len(v) for leaf, v in self.rows.items() if self.leaf_owner[leaf] == table)


Row = dict[str, Any]


def select_subset(conn: psycopg.Connection[Any], catalog: Catalog, rules: Rules,
                  logger: Any) -> RowSelection:
    """Compute the closed subset in the connection's snapshot (read-only queries only)."""
    assert rules.subset is not None
    selection = RowSelection()
    oids: dict[int, str] = {}
    for table in catalog.tables.values():
        for leaf in table.leaves:
            selection.leaf_owner[leaf.qualified] = table.qualified
    for oid, schema, name in conn.execute(
            "SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relkind = 'r'"):
        oids[oid] = f"{schema}.{name}"
    key_columns = _key_columns(catalog)
    queue: deque[tuple[str, list[Row], bool]] = deque()
    for start in rules.subset.start:
        table = catalog.tables[qualify(start.table)]
        cols = _select_list(key_columns[table.qualified])
        if start.percent is not None:
            sql = (f"SELECT tableoid, ctid::text, {cols} FROM {table.sql} "
                   f"TABLESAMPLE BERNOULLI ({float(start.percent)}) REPEATABLE (0)")
        else:
            sql = f"SELECT tableoid, ctid::text, {cols} FROM {table.sql} WHERE {start.where}"
        try:
            with conn.transaction():
                start_rows = _fetch(conn, sql, (), oids)
        except psycopg.Error as e:
            raise RulesError("subset", [f"start {table.qualified}: {str(e).splitlines()[0]}"]) \
                from None
        queue.append((table.qualified, _add(selection, table.qualified, start_rows), True))
    children_limit = rules.subset.children_limit
    steps = _close(conn, catalog, selection, queue, key_columns, oids, children_limit)
    # A table outside the subset that references it keeps only the rows whose parents were
    # copied (copying it whole would break its foreign keys, leaving it empty would drop rows
    # that belong to the subset); then close upwards. Only tables not reached at all follow
    # ``others`` (full or empty).
    changed = True
    while changed:
        changed = False
        for fk in catalog.foreign_keys:
            if fk.parent in selection.reached and fk.child not in selection.reached:
                keys = _selected_keys(conn, catalog, selection, fk.parent, fk.parent_columns)
                found = _lookup(conn, catalog, fk.child, fk.child_columns, keys,
                                key_columns, oids, None)
                queue.append((fk.child, _add(selection, fk.child, found), False))
                steps += _close(conn, catalog, selection, queue, key_columns, oids, 0)
                changed = True
    for name in sorted(selection.reached):
        logger.info("subset: %s rows of %s", f"{selection.count(name):,}", name)
    logger.info("subset closure done in %d step(s)", steps)
    return selection


def _close(conn: psycopg.Connection[Any], catalog: Catalog, selection: RowSelection,
           queue: deque[tuple[str, list[Row], bool]], key_columns: dict[str, list[str]],
           oids: dict[int, str], children_limit: int | None) -> int:
    """Work the queue until no new row appears: parents always, children when downward."""
    steps = 0
    while queue:  # bounded: a row enters the queue only the first time it is selected
        steps += 1
        table_name, rows, downward = queue.popleft()
        for fk in catalog.foreign_keys:
            if fk.child == table_name:
                keys = _keys(rows, fk.child_columns)
                found = _lookup(conn, catalog, fk.parent, fk.parent_columns, keys,
                                key_columns, oids, None)
                new = _add(selection, fk.parent, found)
                if new:
                    queue.append((fk.parent, new, False))
            if fk.parent == table_name and downward and children_limit != 0:
                keys = _keys(rows, fk.parent_columns)
                limit = None if children_limit is None else children_limit * len(keys)
                found = _lookup(conn, catalog, fk.child, fk.child_columns, keys,
                                key_columns, oids, limit)
                new = _add(selection, fk.child, found)
                if new:
                    queue.append((fk.child, new, True))
    return steps


def _selected_keys(conn: psycopg.Connection[Any], catalog: Catalog, selection: RowSelection,
                   table_name: str, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Key values of the rows already selected from ``table_name`` (read back by ctid)."""
    keys: set[tuple[str, ...]] = set()
    cols = ", ".join(f"{identifier_text(c)}::text" for c in columns)
    for leaf in catalog.tables[table_name].leaves:
        tids = sorted(selection.rows.get(leaf.qualified, ()))
        for i in range(0, len(tids), _BATCH):
            found = conn.execute(f"SELECT {cols} FROM {leaf.sql} WHERE ctid = ANY(%s::tid[])",
                                 (tids[i:i + _BATCH],)).fetchall()
            keys.update(tuple(row) for row in found)
    return sorted(k for k in keys if all(v is not None for v in k))


def _key_columns(catalog: Catalog) -> dict[str, list[str]]:
    """Per table, the columns foreign keys use on either side (all we need to traverse)."""
    needed: dict[str, set[str]] = {name: set() for name in catalog.tables}
    for fk in catalog.foreign_keys:
        needed[fk.child].update(fk.child_columns)
        needed[fk.parent].update(fk.parent_columns)
    return {name: sorted(cols) for name, cols in needed.items()}


def _select_list(columns: list[str]) -> str:
    return ", ".join([f"{identifier_text(c)}::text" for c in columns] or ["NULL::text"])


def _fetch(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...],
           oids: dict[int, str]) -> list[tuple[str, str, Row]]:
    cur = conn.execute(sql, params)
    names = [d.name for d in (cur.description or [])][2:]
    return [(oids[row[0]], row[1], dict(zip(names, row[2:], strict=True)))
            for row in cur.fetchall()]


def _add(selection: RowSelection, table: str, found: list[tuple[str, str, Row]]) -> list[Row]:
    """Record rows; return those not seen before (only they need traversing)."""
    selection.reached.add(table)
    new: list[Row] = []
    for leaf, ctid, row in found:
        bucket = selection.rows.setdefault(leaf, set())
        if ctid not in bucket:
            bucket.add(ctid)
            new.append(row)
    return new


def _keys(rows: list[Row], columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    keys = {tuple(row[c] for c in columns) for row in rows}
    return sorted(k for k in keys if all(v is not None for v in k))


def _lookup(conn: psycopg.Connection[Any], catalog: Catalog, table_name: str,
            columns: tuple[str, ...], keys: list[tuple[str, ...]],
            key_columns: dict[str, list[str]], oids: dict[int, str],
            limit: int | None) -> list[tuple[str, str, Row]]:
    if not keys:
        return []
    table = catalog.tables[table_name]
    types = [next(c.type_name for c in table.columns if c.name == name) for name in columns]
    cols = _select_list(key_columns[table_name])
    match = ", ".join(identifier_text(c) for c in columns)
    arrays = ", ".join(f"%s::text[]::{t}[]" for t in types)
    found: list[tuple[str, str, Row]] = []
    for i in range(0, len(keys), _BATCH):
        batch = keys[i:i + _BATCH]
        params = tuple([k[j] for k in batch] for j in range(len(columns)))
        sql = (f"SELECT tableoid, ctid::text, {cols} FROM {table.sql} "
               f"WHERE ({match}) IN (SELECT * FROM unnest({arrays}))")
        if limit is not None:
            sql += f" LIMIT {int(max(limit - len(found), 0))}"
        found += _fetch(conn, sql, params, oids)
        if limit is not None and len(found) >= limit:
            break
    return found


__all__ = ["ForeignKey", "RowSelection", "select_subset"]
