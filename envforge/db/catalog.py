"""What a database holds: tables (partitioned roots and their leaves), columns, keys, sequences.

Read once per run inside the source's snapshot; everything else (rules checks, classification,
subsetting, copy planning) works from this picture instead of querying again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.sql import Identifier

from envforge.db.identifiers import identifier, identifier_text
from envforge.errors import CopyFailedError

_SKIPPED_SCHEMAS = "('pg_catalog', 'information_schema')"


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str  # as declared, e.g. "character varying(40)" or a domain's name
    base_type: str  # domain resolved to its base type's name, e.g. "varchar", "jsonb", "int4"
    category: str  # pg_type.typcategory of the base type: S string, N numeric, D date/time, ...
    not_null: bool
    generated: bool
    max_length: int | None = None
    unique: bool = False
    is_enum: bool = False
    has_default: bool = False  # identity, serial or DEFAULT: seeding may leave it out
    # Its binary COPY form holds no OIDs of its database and it has binary I/O: a built-in
    # base type, an array of one, or an enum (copy_binary.py).
    binary_io: bool = False


@dataclass(frozen=True)
class PhysicalTable:
    """A table that holds rows: a plain table or a leaf partition."""

    schema: str
    name: str
    size_bytes: int
    pages: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def sql(self) -> str:
        return identifier_text(self.schema, self.name)

    @property
    def ident(self) -> Identifier:
        return identifier(self.schema, self.name)


@dataclass
class Table:
    """A logical table as users name it in rules: a plain table or a partitioned root."""

    schema: str
    name: str
    partitioned: bool
    columns: list[Column]
    leaves: list[PhysicalTable] = field(default_factory=list)
    primary_key: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def sql(self) -> str:
        return identifier_text(self.schema, self.name)

    @property
    def ident(self) -> Identifier:
        return identifier(self.schema, self.name)

    @property
    def copy_columns(self) -> list[Column]:
        """Columns COPY moves: generated columns are recomputed by the target."""
        return [c for c in self.columns if not c.generated]

    @property
    def size_bytes(self) -> int:
        return sum(leaf.size_bytes for leaf in self.leaves)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class ForeignKey:
    name: str
    child: str  # qualified logical table
    child_columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]


@dataclass
class Catalog:
    tables: dict[str, Table]
    foreign_keys: list[ForeignKey]
    sequences: list[tuple[str, str]]

    def table(self, qualified: str) -> Table | None:
        return self.tables.get(qualified)


def read_catalog(conn: psycopg.Connection[Any]) -> Catalog:
    """Introspect user tables (extension-owned ones excluded) in the connection's snapshot."""
    tables: dict[str, Table] = {}
    oid_to_name: dict[int, str] = {}
    for oid, schema, name, kind in conn.execute(
        f"""SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
              AND n.nspname NOT IN {_SKIPPED_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                              AND d.objid = c.oid AND d.deptype = 'e')
            ORDER BY 2, 3"""
    ):
        table = Table(schema=schema, name=name, partitioned=kind == "p", columns=[])
        other = tables.get(table.qualified)
        if other is not None:  # "a.b"."c" and "a"."b.c": rules could not tell them apart
            raise CopyFailedError(
                f"tables {other.sql} and {table.sql} are both {table.qualified!r} as rules name "
                "tables (schema.table): envforge cannot tell them apart; rename one of them "
                "(a dot in a schema or table name) before cloning")
        tables[table.qualified] = table
        oid_to_name[oid] = table.qualified
    if not tables:
        return Catalog(tables={}, foreign_keys=[], sequences=_sequences(conn))
    oids = list(oid_to_name)
    unique_columns = _single_unique_columns(conn, oids)
    for (relid, name, type_name, base, category, not_null, generated, typmod, is_enum,
         has_default, binary_io) in (
        conn.execute(
            """SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), bt.typname,
                      bt.typcategory, a.attnotnull OR t.typnotnull, a.attgenerated <> '',
                      CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
                      bt.typtype = 'e', a.atthasdef OR a.attidentity <> '',
                      bt.typsend::oid <> 0 AND bt.typreceive::oid <> 0 AND (
                          bt.typtype = 'e' OR (bt.typtype = 'b' AND bt.oid < 16384
                          AND (bt.typelem = 0 OR bt.typelem < 16384)
                          AND bt.typname !~ '^_?reg'))  -- reg* types send bare OIDs
               FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
               JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype
                                                 ELSE t.oid END
               WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
               ORDER BY a.attrelid, a.attnum""",
            (oids,),
        )
    ):
        max_length = typmod - 4 if base in ("varchar", "bpchar") and typmod > 4 else None
        tables[oid_to_name[relid]].columns.append(
            Column(
                name=name,
                type_name=type_name,
                base_type=base,
                category=category,
                not_null=bool(not_null),
                generated=bool(generated),
                max_length=max_length,
                unique=(relid, name) in unique_columns,
                is_enum=bool(is_enum),
                has_default=bool(has_default),
                binary_io=bool(binary_io),
            )
        )
    for relid, pk in conn.execute(
        """SELECT i.indrelid, array_agg(a.attname ORDER BY k.ord) FROM pg_index i
           CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           WHERE i.indisprimary AND i.indrelid = ANY(%s) GROUP BY i.indrelid, i.indexrelid""",
        (oids,),
    ):
        tables[oid_to_name[relid]].primary_key = tuple(pk)
    for root_oid, schema, name, size, pages in conn.execute(
        """SELECT r.oid, n.nspname, c.relname, pg_relation_size(c.oid) + coalesce(
                      pg_relation_size(nullif(c.reltoastrelid, 0)), 0),
                  pg_relation_size(c.oid) / current_setting('block_size')::int
           FROM pg_class r CROSS JOIN LATERAL (
               SELECT relid FROM pg_partition_tree(r.oid) WHERE isleaf
               UNION ALL SELECT r.oid WHERE r.relkind = 'r') p  -- plain tables: themselves
           JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE r.oid = ANY(%s) AND c.relkind = 'r' ORDER BY 1, 2, 3""",
        (oids,),
    ):
        tables[oid_to_name[root_oid]].leaves.append(
            PhysicalTable(schema=schema, name=name, size_bytes=size, pages=pages)
        )
    return Catalog(tables=tables, foreign_keys=_foreign_keys(conn, oid_to_name),
                   sequences=_sequences(conn))


def _single_unique_columns(conn: psycopg.Connection[Any], oids: list[int]) -> set[tuple[int, str]]:
    """(table oid, column) pairs covered alone by a unique index or primary key."""
    rows = conn.execute(
        """SELECT i.indrelid, a.attname FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indisunique AND i.indnkeyatts = 1 AND i.indrelid = ANY(%s)""",
        (oids,),
    )
    return {(relid, name) for relid, name in rows}


def _foreign_keys(conn: psycopg.Connection[Any], oid_to_name: dict[int, str]) -> list[ForeignKey]:
    """Foreign keys between logical tables. Keys declared on a partition (as Pagila does for
    ``payment``) count as keys of its partitioned root: subsetting and rule propagation work
    on logical tables, and the post-data restore validates them per partition all the same.
    One key declared on several partitions becomes one logical key."""
    owner = dict(oid_to_name)
    for leaf, root in conn.execute(
        """SELECT p.relid::oid, r.oid FROM pg_class r CROSS JOIN LATERAL pg_partition_tree(r.oid) p
           WHERE r.oid = ANY(%s) AND r.relkind = 'p' AND p.relid <> r.oid""",
        (list(oid_to_name),),
    ):
        owner[leaf] = oid_to_name[root]
    keys: dict[tuple[str, tuple[str, ...], str, tuple[str, ...]], ForeignKey] = {}
    for name, child, parent, child_cols, parent_cols in conn.execute(
        """SELECT con.conname, con.conrelid, con.confrelid,
                  (SELECT array_agg(a.attname ORDER BY k.o) FROM unnest(con.conkey)
                       WITH ORDINALITY k(n, o) JOIN pg_attribute a
                       ON a.attrelid = con.conrelid AND a.attnum = k.n),
                  (SELECT array_agg(a.attname ORDER BY k.o) FROM unnest(con.confkey)
                       WITH ORDINALITY k(n, o) JOIN pg_attribute a
                       ON a.attrelid = con.confrelid AND a.attnum = k.n)
           FROM pg_constraint con WHERE con.contype = 'f' AND con.conparentid = 0
             AND con.conrelid = ANY(%s) ORDER BY 1""",
        (list(owner),),
    ):
        if child in owner and parent in owner:
            fk = ForeignKey(name, owner[child], tuple(child_cols), owner[parent],
                            tuple(parent_cols))
            keys.setdefault((fk.child, fk.child_columns, fk.parent, fk.parent_columns), fk)
    return sorted(keys.values(), key=lambda k: (k.child, k.name))


def _sequences(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    rows = conn.execute(
        f"""SELECT n.nspname, c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'S' AND n.nspname NOT IN {_SKIPPED_SCHEMAS} ORDER BY 1, 2"""
    )
    return [(s, n) for s, n in rows]
