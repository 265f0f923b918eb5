"""Copy tasks: which rows of which physical table each unit of copy work moves, in what order.

A task is a plain table, a leaf partition, a 24 MB ctid slice of a large one, or the subset's
ctids of a leaf. Tasks run largest first, alternating between tables so parallel workers rarely
append to the same table at once.
"""

from __future__ import annotations

from envforge.db.catalog import Catalog, Table
from envforge.db.copy import CopyTask, FieldRule
from envforge.db.copy_binary import binary_fits
from envforge.db.coverage import CoverageMap
from envforge.db.identifiers import literal_text
from envforge.db.request import CHUNK_BYTES  # tables larger are copied in ctid slices
from envforge.db.rules import Rules
from envforge.db.subset import RowSelection

# Tasks smaller than this run in the calling process over shared connections (the snapshot's
# own and one target session): starting psql and two sessions costs more than their rows.
SMALL_TASK_BYTES = 2 * 1024 * 1024


def plan_tasks(catalog: Catalog, coverage: CoverageMap, rules: Rules,
               selection: RowSelection | None, binary: bool = False) -> list[CopyTask]:
    """Copy tasks, largest first; big leaves split in ctid page ranges for parallelism.
    ``binary``: tables whose rows copy exactly in binary COPY do (copy_binary.py)."""
    tasks: list[tuple[int, CopyTask]] = []
    for name, table in catalog.tables.items():
        table_rules = rules.tables.get(name)
        if table_rules is not None and table_rules.skip:
            continue
        columns = tuple(c.name for c in table.copy_columns)
        if not columns:
            continue  # nothing COPY can carry (no columns, or only generated ones)
        fields = _field_rules(table, coverage)
        in_binary = binary and binary_fits(tuple(table.copy_columns),
                                           tuple((f.column, f.rule) for f in fields))
        for leaf in table.leaves:
            def task(label: str, where: str | None = None, size: int = leaf.size_bytes,
                     _leaf_sql: str = leaf.sql, _table: str = name,
                     _columns: tuple[str, ...] = columns,
                     _fields: tuple[FieldRule, ...] = fields,
                     _binary: bool = in_binary) -> CopyTask:
                return CopyTask(table=_table, label=label, physical_sql=_leaf_sql,
                                columns=_columns, fields=_fields, where=where,
                                size_bytes=size, binary=_binary)

            if selection is not None:
                tids = selection.rows_for(leaf.qualified)
                if tids is None and not (rules.subset and rules.subset.others == "empty"):
                    tasks.append((leaf.size_bytes, task(leaf.qualified)))
                elif tids:
                    # ctids as the server printed them, (page,item): an array literal
                    tids_literal = literal_text("{" + ",".join(f'"{t}"' for t in tids) + "}")
                    tasks.append((len(tids), task(f"{leaf.qualified} (subset)",
                                                  f"ctid = ANY({tids_literal}::tid[])")))
                continue
            if leaf.pages == 0 and leaf.size_bytes == 0:
                continue  # no heap page, no row (Pagila's 55 payment partitions: most empty)
            slices = max(1, -(-leaf.size_bytes // CHUNK_BYTES))
            if slices == 1:
                tasks.append((leaf.size_bytes, task(leaf.qualified)))
                continue
            step = -(-leaf.pages // slices)
            for i in range(slices):
                lo, hi = i * step, (i + 1) * step
                where = f"ctid >= '({lo},0)'::tid" + (
                    f" AND ctid < '({hi},0)'::tid" if i < slices - 1 else "")
                tasks.append((leaf.size_bytes // slices,
                              task(f"{leaf.qualified} [{i + 1}/{slices}]", where,
                                   leaf.size_bytes // slices)))
    # Largest first, but alternating between tables so that parallel workers rarely append
    # to the same table at once (they would queue on its extension lock).
    by_table: dict[str, list[tuple[int, CopyTask]]] = {}
    for size, t in sorted(tasks, key=lambda pair: -pair[0]):
        by_table.setdefault(t.table, []).append((size, t))
    lanes = sorted(by_table.values(), key=lambda q: -sum(size for size, _ in q))
    ordered: list[CopyTask] = []
    while any(lanes):
        for lane in lanes:
            if lane:
                ordered.append(lane.pop(0)[1])
    return ordered


def _field_rules(table: Table, coverage: CoverageMap) -> tuple[FieldRule, ...]:
    covered = coverage.get(table.qualified, {})
    fields = []
    for index, column in enumerate(table.copy_columns):
        cov = covered.get(column.name)
        if cov is not None and cov.rule.transform != "passthrough":
            fields.append(FieldRule(index, column, cov.rule))
    return tuple(fields)
