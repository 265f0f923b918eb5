"""What ``envforge db plan`` shows: the decision for every column and before/after samples.

The samples contain real source values: they are printed to the terminal of the person who
runs the plan and nowhere else (never logged, never in a flow run).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from envforge.db.catalog import Catalog, read_catalog
from envforge.db.classify import ColumnDecision, classify_columns
from envforge.db.connection import ServerAddress, read_only_snapshot
from envforge.db.coverage import resolve_coverage
from envforge.db.identifiers import identifier
from envforge.db.rules import Rules
from envforge.db.transformers import build_transform


@dataclass
class Plan:
    catalog: Catalog
    decisions: list[ColumnDecision]
    samples: dict[tuple[str, str], list[tuple[str, str | None]]]

    @property
    def stops(self) -> list[ColumnDecision]:
        return [d for d in self.decisions if d.stops]


def make_plan(source: ServerAddress, rules: Rules, key: bytes, rules_source: str = "rules",
              samples_per_column: int = 3) -> Plan:
    with read_only_snapshot(source) as conn:
        catalog = read_catalog(conn)
        coverage = resolve_coverage(rules, catalog, rules_source)
        decisions = classify_columns(conn, catalog, coverage, rules)
        samples: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
        for table_name, covered in coverage.items():
            table = catalog.tables[table_name]
            for column_name, cov in covered.items():
                column = table.column(column_name)
                fn = build_transform(cov.rule, column, key) if column else None
                if fn is None:
                    continue
                values = conn.execute(sql.SQL(
                    "SELECT {col}::text FROM {table} WHERE {col} IS NOT NULL LIMIT {n}").format(
                    col=identifier(column_name), table=table.ident,
                    n=sql.Literal(int(samples_per_column)))).fetchall()
                samples[(table_name, column_name)] = [(v[0], fn(v[0])) for v in values]
    return Plan(catalog, decisions, samples)


def render_plan(plan: Plan, show_samples: bool = True) -> str:
    lines: list[str] = []
    current = ""
    for d in plan.decisions:
        if d.table != current:
            current = d.table
            lines.append(f"\n{d.table}")
        mark = {"stop": "STOP", "clear": "ok", "passthrough": "pass"}.get(d.decision,
                                                                          d.decision)
        line = f"  {d.column:<28} {d.type_name:<26} {mark:<10} {d.detail}"
        if d.suggestion:
            line += f"  -> suggested rule: {d.suggestion}" + (
                f" on {'.'.join(d.suggest_on)} (propagated here)" if d.suggest_on else "")
        lines.append(line)
        if show_samples:
            for before, after in plan.samples.get((d.table, d.column), []):
                lines.append(f"      {_short(before)!r} -> {_short(after)!r}")
    stops = plan.stops
    lines.append("")
    if stops:
        lines.append("suggested rules (review, then add to the rules file):")
        lines.append(suggested_rules(plan.decisions))
    lines.append(f"{len(stops)} column(s) would stop a clone" if stops else
                 "every column is decided: a clone would run")
    return "\n".join(lines)


def suggested_rules(decisions: list[ColumnDecision]) -> str:
    """The suggestions as a rules-file fragment a clone accepts as it is (a foreign-key
    column's rule is written once, on the column it references)."""
    placed: dict[str, dict[str, str]] = {}
    for d in decisions:
        if d.stops and d.suggestion:
            table, column = d.suggest_on or (d.table, d.column)
            placed.setdefault(table, {}).setdefault(column, d.suggestion)
    lines = ["tables:"]
    for table in sorted(placed):
        lines.append(f"  {table}:")
        lines += [f"    {column}: {rule}" for column, rule in placed[table].items()]
    return "\n".join(lines) + "\n"


def _short(value: str | None, limit: int = 60) -> str | None:
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 3] + "..."
