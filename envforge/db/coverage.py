"""Which rule covers each column: written in the rules file, or propagated along foreign keys.

A transformed key must stay a key: when ``public.users.email`` is hashed, every column whose
foreign key references it gets the same (deterministic) rule, so references still match.
Every problem (unknown table or column, misfit transformer, conflicting rules) is collected
and reported at once, before anything is written.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from envforge.db.catalog import Catalog
from envforge.db.rules import ColumnRule, Rules, qualify
from envforge.db.transformers import fit_problem
from envforge.errors import RulesError


@dataclass(frozen=True)
class Coverage:
    rule: ColumnRule
    origin: str  # "rule" or "propagated from <table.column> (<foreign key>)"


CoverageMap = dict[str, dict[str, Coverage]]


def resolve_coverage(rules: Rules, catalog: Catalog, source: str = "rules") -> CoverageMap:
    """Check the rules against the catalog and propagate key rules; RulesError lists all."""
    problems: list[str] = rules.problems  # column rules that did not parse
    coverage: CoverageMap = {name: {} for name in catalog.tables}
    for table_name, table_rules in rules.tables.items():
        table = catalog.table(table_name)
        if table is None:
            problems.append(f"table {table_name!r} does not exist in the source"
                            + _did_you_mean(table_name, list(catalog.tables)))
            continue
        for column_name, rule in table_rules.columns.items():
            column = table.column(column_name)
            where = f"{table_name}.{column_name}"
            if column is None:
                problems.append(f"{where}: no such column"
                                + _did_you_mean(column_name, [c.name for c in table.columns]))
            elif column.generated and rule.transform != "passthrough":
                problems.append(f"{where}: generated column, recomputed by the target from "
                                "other columns; put the rules on those columns")
            elif (problem := fit_problem(rule, column)) is not None:
                problems.append(f"{where}: {problem}")
            else:
                coverage[table_name][column_name] = Coverage(rule, "rule")
    if rules.subset is not None:
        for start in rules.subset.start:
            if catalog.table(qualify(start.table)) is None:
                problems.append(f"subset.start: table {start.table!r} does not exist"
                                + _did_you_mean(qualify(start.table), list(catalog.tables)))
    problems += _propagate(coverage, catalog)
    problems += _skipped_but_referenced(rules, catalog)
    if problems:
        raise RulesError(source, problems)
    return coverage


def _propagate(coverage: CoverageMap, catalog: Catalog) -> list[str]:
    problems: list[str] = []
    changed = True
    while changed:  # bounded: each pass adds at least one of finitely many columns
        changed = False
        for fk in catalog.foreign_keys:
            for child_col, parent_col in zip(fk.child_columns, fk.parent_columns, strict=True):
                parent = coverage[fk.parent].get(parent_col)
                child = coverage[fk.child].get(child_col)
                parent_rule = parent.rule if parent else None
                child_rule = child.rule if child else None
                if _effective(parent_rule) == _effective(child_rule):
                    continue
                where = f"{fk.child}.{child_col}"
                if parent_rule is not None and child is None:
                    child_column = catalog.tables[fk.child].column(child_col)
                    problem = fit_problem(parent_rule, child_column) if child_column else None
                    if problem:
                        problems.append(f"{where}: propagated from {fk.parent}.{parent_col}: "
                                        f"{problem}")
                        continue
                    coverage[fk.child][child_col] = Coverage(
                        parent_rule, f"propagated from {fk.parent}.{parent_col} ({fk.name})")
                    changed = True
                elif child is not None and child.origin == "rule":
                    problems.append(
                        f"{where}: its rule differs from that of {fk.parent}.{parent_col}, which "
                        f"foreign key {fk.name} references, so references would break; put one "
                        f"rule on {fk.parent}.{parent_col} only (it is propagated)")
    return sorted(set(problems))


def _effective(rule: ColumnRule | None) -> ColumnRule | None:
    return None if rule is None or rule.transform == "passthrough" else rule


def _skipped_but_referenced(rules: Rules, catalog: Catalog) -> list[str]:
    skipped = {name for name, t in rules.tables.items() if t.skip}
    return [
        f"{fk.parent}: skipped, but {fk.child} ({fk.name}) references it; skip {fk.child} too"
        for fk in catalog.foreign_keys
        if fk.parent in skipped and fk.child not in skipped
    ]


def _did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""
