"""What a golden copy *is*: the source it was read from, the rules and key that anonymised it,
and the shape of the source's schema at that moment.

Two goldens are interchangeable only when all of these match, so a branch compares the
golden's recorded identity with the one its own request would produce before copying it: a
rules change, another key or a migrated source makes the golden stale (it is rebuilt), another
source makes it someone else's (it is refused). Nothing here holds a secret: the key enters
only as an HMAC of a constant, the rules as a digest of their normalised form.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from envforge.db.rules import Rules

_IDENTITY_FIELDS = ("source", "database", "rules", "key", "schema")
# Recorded since goldens were found to outlive a restarted or copied source and a change of
# envforge's own anonymisation code; a golden recorded without them is stale (rebuilt).
_LATER_FIELDS = ("instance", "engine")


@dataclass(frozen=True)
class GoldenIdentity:
    """``source``: the source server's system identifier (see :func:`source_server_key`);
    ``database``: the source database; ``rules``, ``key``, ``schema``: digests; ``instance``:
    when the source server started (:func:`source_instance`); ``engine``: a digest of the
    code that anonymises (:func:`engine_digest`)."""

    source: str
    database: str
    rules: str
    key: str
    schema: str
    instance: str = ""
    engine: str = ""

    def as_marker(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_marker(cls, marker: dict[str, Any]) -> GoldenIdentity | None:
        """The identity recorded in a golden's marker; None for a golden built before
        identities were recorded (it is treated as stale)."""
        recorded = marker.get("identity")
        if not isinstance(recorded, dict) or any(
                not isinstance(recorded.get(f), str) for f in _IDENTITY_FIELDS):
            return None
        return cls(**{f: str(recorded[f]) for f in _IDENTITY_FIELDS},
                   **{f: str(recorded.get(f) or "") for f in _LATER_FIELDS})

    def same_source(self, other: GoldenIdentity) -> bool:
        return (self.source, self.database) == (other.source, other.database)

    def differences(self, other: GoldenIdentity) -> list[str]:
        """What differs, in words a log line can carry (no values: digests only matter)."""
        names = {"source": "source server", "database": "source database",
                 "rules": "anonymisation rules", "key": "anonymisation key",
                 "schema": "source schema",
                 "instance": "source server instance (restarted, or another copy of it)",
                 "engine": "envforge's anonymisation code"}
        return [names[f] for f in (*_IDENTITY_FIELDS, *_LATER_FIELDS)
                if getattr(self, f) != getattr(other, f)]


# The modules whose code decides what a golden holds: which columns are refused (strict
# classification), how values are faked and how rows are chosen and copied.
# keyed_loops' Python loops are the reference its compiled twin (keyed_c.c) is tested against.
_ENGINE_MODULES = ("classify", "names", "person_names_data", "transformers", "keyed_loops",
                   "fakes", "fake_words_data", "copy", "copy_source", "copy_values",
                   "copy_binary", "rules", "coverage", "subset", "collisions", "tasks",
                   "catalog", "objects", "clone", "schema",
                   # the compiled parts: what runs when they are built
                   "keyed_c.c", "keyed_c_blake2b.h", "copyrows_c.c")
ENGINE_FILES = tuple(name if "." in name else f"{name}.py" for name in _ENGINE_MODULES)


@lru_cache(maxsize=1)
def engine_digest() -> str:
    """sha256 of the source of :data:`ENGINE_FILES`: a golden made by other anonymisation
    code (an envforge upgrade that fixes a transformer or finds more personal data) is
    rebuilt before it is branched, as a rules change is."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in ENGINE_FILES:
        try:
            digest.update(name.encode() + b"\0" + (here / name).read_bytes())
        except OSError:  # installed without sources: every start counts as new code
            digest.update(f"{name}: unreadable".encode() + os.urandom(16))
    return digest.hexdigest()


def rules_digest(rules: Rules) -> str:
    """sha256 of the rules in normal form (shorthands expanded, defaults filled, keys sorted),
    so reformatting the file does not change it and any change of meaning does."""
    normal = json.dumps(rules.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(normal.encode()).hexdigest()


def key_fingerprint(key: bytes) -> str:
    """A fingerprint of the anonymisation key that reveals nothing about it."""
    return hmac.new(key, b"envforge golden identity v1", hashlib.sha256).hexdigest()[:32]


def source_instance(conn: psycopg.Connection[Any]) -> str:
    """When the source server started. Two servers made from one data directory (a base
    backup, a copied volume) share a system identifier; their start times tell them apart,
    so a golden read from one is rebuilt, not branched, for the other (a restart of the
    source rebuilds its goldens once)."""
    row = conn.execute("SELECT pg_postmaster_start_time()::text").fetchone()
    assert row is not None
    return str(row[0])


def source_server_key(conn: psycopg.Connection[Any]) -> str:
    """Who the source server is, whatever host name reached it: ``sysid:<system identifier>``
    (pg_control_system(), the same for a cluster and its physical replicas), else the data
    directory and port when the role may read them, else the address the server reports."""
    try:
        with conn.transaction():
            row = conn.execute("SELECT system_identifier::text FROM pg_control_system()"
                               ).fetchone()
        if row is not None and row[0]:
            return f"sysid:{row[0]}"
    except psycopg.Error:
        pass  # EXECUTE not granted to this role
    row = conn.execute(
        "SELECT (SELECT setting FROM pg_settings WHERE name = 'data_directory'), "
        "current_setting('port'), coalesce(host(inet_server_addr()), 'local')").fetchone()
    assert row is not None
    if row[0]:
        return f"datadir:{row[0]}:{row[1]}"
    return f"addr:{row[2]}:{row[1]}"


# Every user relation (tables, views, matviews, sequences, types), its columns with their
# types, defaults, nullability and generation, and every constraint's definition, in a fixed
# order, hashed on the server (one round trip; only the digest travels).
_SCHEMA_FINGERPRINT = """
WITH rels AS (
  SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'),
parts AS (
  SELECT format('rel %I.%I %s', nspname, relname, relkind) AS line FROM rels
  UNION ALL
  SELECT format('col %I.%I %s %s %s %s %s %s', r.nspname, r.relname, a.attnum, a.attname,
                format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated,
                pg_get_expr(d.adbin, d.adrelid))
  FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0
       AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  UNION ALL
  SELECT format('con %I.%I %I %s', r.nspname, r.relname, con.conname,
                pg_get_constraintdef(con.oid))
  FROM rels r JOIN pg_constraint con ON con.conrelid = r.oid
  UNION ALL
  SELECT format('idx %I.%I %s', r.nspname, r.relname, pg_get_indexdef(i.indexrelid))
  FROM rels r JOIN pg_index i ON i.indrelid = r.oid
  UNION ALL
  SELECT format('type %I.%I %s %s', n.nspname, t.typname, t.typtype,
                (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                 FROM pg_enum e WHERE e.enumtypid = t.oid))
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  WHERE t.typtype IN ('e', 'd', 'c') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_%'
    AND NOT (t.typtype = 'c' AND t.typrelid IN (SELECT oid FROM rels)))
SELECT encode(sha256(convert_to(coalesce(string_agg(line, E'\\n' ORDER BY line COLLATE "C"),
                                         ''), 'UTF8')), 'hex') FROM parts
"""


def schema_fingerprint(conn: psycopg.Connection[Any]) -> str:
    """sha256 of the source's schema (read in the connection's snapshot)."""
    row = conn.execute(_SCHEMA_FINGERPRINT).fetchone()
    assert row is not None
    return str(row[0])
