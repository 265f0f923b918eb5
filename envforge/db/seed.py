"""The ``empty`` and ``seed`` strategies: schema, then fixtures, then synthetic Faker rows.

The schema comes from a SQL file or, schema only, from a database (pg_dump --schema-only).
Fixtures are SQL files, CSV files named ``<schema>.<table>.csv`` (with a header) or YAML files
mapping ``schema.table`` to a list of rows. Synthetic rows are generated per table, parents
before children, with Faker and ``random`` seeded from one fixed seed: foreign keys pick
existing parent keys, unique columns get distinct values, rows that would still collide with a
composite key are skipped (ON CONFLICT DO NOTHING) and the count reports what was inserted.
"""

from __future__ import annotations

import csv
import random
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml
from faker import Faker
from psycopg import sql
from psycopg.types.json import Jsonb

from envforge.db.catalog import Catalog, Column, Table, read_catalog
from envforge.db.connection import ServerAddress, connected
from envforge.db.identifiers import identifier
from envforge.db.rules import qualify
from envforge.db.safety import create_owned_database, drop_owned_database
from envforge.db.schema import dump_schema, pg_tool, restore_section, run_pg_tool
from envforge.db.transformers import type_class
from envforge.errors import CopyFailedError, RulesError

MAX_GENERATED_ROWS = 1_000_000


@dataclass
class SeedRequest:
    target: ServerAddress
    schema_sql: Path | None = None
    schema_source: ServerAddress | None = None
    fixtures: list[Path] = field(default_factory=list)
    generate: dict[str, int] = field(default_factory=dict)
    seed: int = 0
    replace: bool = False
    marker: dict[str, Any] = field(default_factory=dict)


@dataclass
class SeedReport:
    database: str
    rows: int
    seconds: float
    tables: dict[str, int]


def seed_database(request: SeedRequest, logger: Any) -> SeedReport:
    """Create the target (envforge-owned) and fill it; on any failure it is dropped again."""
    started = time.perf_counter()
    _check_inputs(request)
    name = request.target.dbname
    create_owned_database(request.target, name, dict(request.marker, strategy="seed" if (
        request.fixtures or request.generate) else "empty"), replace=request.replace)
    try:
        with tempfile.TemporaryDirectory(prefix="envforge-seed-") as tmp:
            schema_dump = Path(tmp) / "schema.dump"
            if request.schema_source is not None:
                dump_schema(request.schema_source, None, schema_dump)
                restore_section(request.target, schema_dump, "pre-data")
                restore_section(request.target, schema_dump, "post-data")
            elif request.schema_sql is not None:
                _run_sql_file(request.target, request.schema_sql)
            counts = _load_fixtures(request.target, request.fixtures, logger)
            with connected(request.target) as conn:
                catalog = read_catalog(conn)
                for table, rows in _generate(conn, catalog, request.generate, request.seed):
                    counts[table] = counts.get(table, 0) + rows
                    logger.info("seeded %s: %s synthetic rows", table, f"{rows:,}")
                conn.commit()
                conn.autocommit = True
                conn.execute("ANALYZE")
    except BaseException:
        logger.error("seeding %s failed; dropping it", request.target.label)
        drop_owned_database(request.target, name)
        raise
    return SeedReport(name, sum(counts.values()), time.perf_counter() - started, counts)


def _check_inputs(request: SeedRequest) -> None:
    problems = [f"{p}: file not found" for p in
                [*(request.fixtures), *([request.schema_sql] if request.schema_sql else [])]
                if not p.is_file()]
    problems += [f"generate.{t}: {n} rows is outside 0..{MAX_GENERATED_ROWS}"
                 for t, n in request.generate.items() if not 0 <= n <= MAX_GENERATED_ROWS]
    problems += [f"{p.name}: fixtures must be .sql, .csv, .yaml or .yml" for p in request.fixtures
                 if p.suffix.lower() not in (".sql", ".csv", ".yaml", ".yml")]
    if problems:
        raise RulesError("seed", problems)


def _run_sql_file(target: ServerAddress, path: Path) -> None:
    run_pg_tool([pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1",
                 f"--dbname={target.conninfo()}", "-f", str(path)], target, f"running {path.name}")


def _load_fixtures(target: ServerAddress, fixtures: list[Path], logger: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in fixtures:
        suffix = path.suffix.lower()
        if suffix == ".sql":
            _run_sql_file(target, path)
            logger.info("fixture %s applied", path.name)
            continue
        with connected(target) as conn:
            try:
                if suffix == ".csv":
                    table = qualify(path.stem)
                    counts[table] = counts.get(table, 0) + _load_csv(conn, table, path)
                else:
                    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                    if not isinstance(data, dict):
                        raise RulesError(str(path), ["expected a mapping: schema.table -> rows"])
                    for table, rows in data.items():
                        counts[qualify(table)] = counts.get(qualify(table), 0) + _insert_rows(
                            conn, qualify(table), rows or [])
                conn.commit()
            except psycopg.Error as e:
                raise CopyFailedError(f"fixture {path.name}: {str(e).splitlines()[0]}") from e
        logger.info("fixture %s loaded", path.name)
    return counts


def _sql_name(table: str) -> sql.Identifier:
    schema, _, name = table.partition(".")
    return identifier(schema, name)


def _column_list(names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(identifier, names))


def _marks(count: int) -> sql.Composed:
    return sql.SQL(", ").join([sql.Placeholder()] * count)


def _load_csv(conn: psycopg.Connection[Any], table: str, path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            return 0
        cur = conn.cursor()
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
                _sql_name(table), _column_list(header))) as copy:
            for row in reader:
                copy.write_row([None if v == "" else v for v in row])
        return cur.rowcount


def _insert_rows(conn: psycopg.Connection[Any], table: str, rows: list[dict[str, Any]]) -> int:
    inserted = 0
    for row in rows:
        cur = conn.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            _sql_name(table), _column_list(row), _marks(len(row))),
                           [Jsonb(v) if isinstance(v, dict | list) else v
                            for v in row.values()])
        inserted += cur.rowcount
    return inserted


def _generate(conn: psycopg.Connection[Any], catalog: Catalog, wanted: dict[str, int],
              seed: int) -> list[tuple[str, int]]:
    unknown = [t for t in wanted if qualify(t) not in catalog.tables]
    if unknown:
        raise RulesError("seed", [f"generate: table {t!r} does not exist" for t in unknown])
    faker = Faker()
    faker.seed_instance(seed)
    rng = random.Random(seed)
    done = []
    for table_name in _parents_first(catalog, [qualify(t) for t in wanted]):
        table = catalog.tables[table_name]
        count = wanted.get(table_name, wanted.get(table_name.split(".", 1)[1], 0))
        done.append((table_name, _generate_table(conn, catalog, table, count, faker, rng)))
    return done


def _parents_first(catalog: Catalog, tables: list[str]) -> list[str]:
    """Topological order over foreign keys among ``tables``; cycles keep the given order."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered or name in visiting:
            return
        visiting.add(name)
        for fk in catalog.foreign_keys:
            if fk.child == name and fk.parent != name and fk.parent in tables:
                visit(fk.parent)
        ordered.append(name)

    for name in tables:
        visit(name)
    return ordered


def _generate_table(conn: psycopg.Connection[Any], catalog: Catalog, table: Table, count: int,
                    faker: Faker, rng: random.Random) -> int:
    if count == 0:
        return 0
    fk_choices: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    unset: set[str] = set()
    for fk in catalog.foreign_keys:
        if fk.child == table.qualified:
            parent = catalog.tables[fk.parent]
            key_sql = _column_list(fk.parent_columns)
            keys = conn.execute(sql.SQL("SELECT DISTINCT {keys} FROM {table} ORDER BY {keys} "
                                        "LIMIT 10000").format(keys=key_sql, table=parent.ident)
                                ).fetchall()
            nullable = all(not (col := table.column(n)) or not col.not_null
                           for n in fk.child_columns)
            if keys or not nullable:
                fk_choices[fk.child_columns] = keys  # empty + NOT NULL fails below, clearly
            else:
                unset.update(fk.child_columns)  # no parent rows yet (self or cycle): NULL
    in_fk = {name for fk_cols in fk_choices for name in fk_cols} | unset
    columns = [c for c in table.copy_columns if c.name in in_fk or not c.has_default]
    enum_labels = _enum_labels(conn, table)
    rows: list[list[Any]] = []
    for i in range(count):
        row: dict[str, Any] = {}
        row.update(dict.fromkeys(unset))
        for cols, keys in fk_choices.items():
            if not keys:
                raise CopyFailedError(f"seed {table.qualified}: no rows in the table referenced "
                                      f"by ({', '.join(cols)}); generate or load it first")
            row.update(zip(cols, rng.choice(keys), strict=True))
        for column in columns:
            if column.name not in row:
                row[column.name] = _fake_value(column, i, faker, rng, enum_labels)
        rows.append([row[c.name] for c in columns])
    count_rows = sql.SQL("SELECT count(*) FROM {}").format(table.ident)
    before = conn.execute(count_rows).fetchone()
    with conn.cursor() as cur:
        try:
            cur.executemany(sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING")
                            .format(table.ident, _column_list(c.name for c in columns),
                                    _marks(len(columns))), rows)
        except psycopg.Error as e:
            raise CopyFailedError(f"seed {table.qualified}: {str(e).splitlines()[0]}") from e
    after = conn.execute(count_rows).fetchone()
    return int(after[0]) - int(before[0]) if after and before else 0


def _enum_labels(conn: psycopg.Connection[Any], table: Table) -> dict[str, list[str]]:
    labels: dict[str, list[str]] = {}
    for name, label in conn.execute(
            "SELECT a.attname, e.enumlabel FROM pg_attribute a JOIN pg_enum e ON e.enumtypid = "
            "a.atttypid WHERE a.attrelid = %s::regclass ORDER BY a.attname, e.enumsortorder",
            (table.sql,)):
        labels.setdefault(name, []).append(label)
    return labels


def _fake_value(column: Column, i: int, faker: Faker, rng: random.Random,
                enums: dict[str, list[str]]) -> Any:
    """A plausible value by column name first, type second; unique columns get the row index."""
    name, tclass = column.name.lower(), type_class(column)
    if column.name in enums:
        return rng.choice(enums[column.name])
    if tclass == "text":
        value = _text_by_name(name, faker)
        if column.unique:
            value = f"{i}-{value}" if "mail" not in name else f"u{i}.{value}"
        return value[: column.max_length] if column.max_length else value
    if tclass == "int":
        return i + 1 if column.unique else rng.randint(1, 1000)
    if tclass == "number":
        return round(rng.uniform(1, 10_000), 2)
    if tclass == "date":
        return date(1950, 1, 1) + timedelta(days=rng.randrange(27_000))
    if tclass == "timestamp":
        return datetime(2020, 1, 1) + timedelta(seconds=rng.randrange(150_000_000))
    if tclass == "bool":
        return rng.random() < 0.5
    if tclass == "uuid":
        return faker.uuid4()
    if tclass == "inet":
        return faker.ipv4()
    if tclass == "json":
        return Jsonb({"note": faker.sentence()})
    return None if not column.not_null else faker.word()


def _text_by_name(name: str, faker: Faker) -> str:
    for hint, make in (("mail", faker.email), ("first", faker.first_name),
                       ("last", faker.last_name), ("phone", faker.phone_number),
                       ("address", faker.street_address), ("street", faker.street_address),
                       ("city", faker.city), ("country", faker.country_code),
                       ("name", faker.name), ("iban", faker.iban)):
        if hint in name:
            return str(make())
    return str(faker.sentence(nb_words=6))
