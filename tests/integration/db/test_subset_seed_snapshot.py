"""Subsetting (FK closure), seeding, snapshot and restore on the real test cluster."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from envforge.db.connection import ServerAddress
from envforge.db.rules import parse_rules
from envforge.db.safety import drop_owned_database
from envforge.db.seed import SeedRequest, seed_database
from envforge.db.snapshot import LocalDirectoryStore, restore_snapshot, take_snapshot
from envforge.errors import CopyFailedError, RulesError, SnapshotError, UnsafeTargetError

from .conftest import HERE, database_exists
from .test_clone import clone, rows, table_digest

pytestmark = pytest.mark.postgres


def subset_rules(subset: dict[str, object]) -> object:
    import yaml

    data = yaml.safe_load((HERE / "realistic_rules.yaml").read_text())
    data["subset"] = subset
    return parse_rules(data)


def test_subset_closure_keeps_every_parent(source_db: ServerAddress) -> None:
    rules = subset_rules({"start": [{"table": "sales.orders",
                                     "where": "ordered_at < '2024-01-15'"}],
                          "children_limit": 2})
    target, report = clone(source_db, "envforge_subset", rules=rules)
    try:
        assert report.subset
        orders = rows(target, "SELECT count(*) FROM sales.orders")[0][0]
        expected = rows(source_db, "SELECT count(*) FROM sales.orders "
                                   "WHERE ordered_at < '2024-01-15'")[0][0]
        assert 0 < expected <= orders < rows(source_db, "SELECT count(*) FROM sales.orders")[0][0]
        customers = rows(target, "SELECT count(*) FROM crm.customers")[0][0]
        assert 0 < customers < 2000
        # every foreign key was created and validated by the post-data restore
        fk_sql = ("SELECT bool_and(convalidated), count(*) FROM pg_constraint "
                  "WHERE contype = 'f' AND conparentid = 0")
        assert rows(target, fk_sql)[0] == (True, rows(source_db, fk_sql)[0][1])
        # self-reference and the customers <-> accounts cycle are closed
        assert rows(target, "SELECT count(*) FROM crm.customers c WHERE referred_by IS NOT NULL "
                            "AND NOT EXISTS (SELECT 1 FROM crm.customers p "
                            "WHERE p.id = c.referred_by)")[0][0] == 0
        assert rows(target, "SELECT count(*) FROM crm.customers WHERE primary_account_id "
                            "IS NOT NULL")[0][0] == customers
        # children follow the start rows: order lines of the copied orders, 2 per order
        lines = rows(target, "SELECT count(*) FROM sales.order_lines")[0][0]
        assert 0 < lines <= 2 * orders
        assert report.tables["crm.customers"] == customers
    finally:
        drop_owned_database(target, "envforge_subset")


def test_subset_percent_is_deterministic(source_db: ServerAddress) -> None:
    rules = subset_rules({"start": [{"table": "hr.employees", "percent": 20}],
                          "others": "empty"})
    first, _ = clone(source_db, "envforge_subset_p1", rules=rules)
    second, _ = clone(source_db, "envforge_subset_p2", rules=rules)
    try:
        count = rows(first, "SELECT count(*) FROM hr.employees")[0][0]
        assert 20 < count < 200  # ~40 sampled plus their managers up to the root
        assert table_digest(first, "hr.employees") == table_digest(second, "hr.employees")
        assert rows(first, "SELECT count(*) FROM crm.customers")[0][0] == 0  # others: empty
    finally:
        drop_owned_database(first, "envforge_subset_p1")
        drop_owned_database(second, "envforge_subset_p2")


def test_subset_bad_where_is_a_rules_error(source_db: ServerAddress) -> None:
    rules = subset_rules({"start": [{"table": "sales.orders", "where": "no_such_column > 1"}]})
    with pytest.raises(RulesError, match=r"start sales\.orders"):
        clone(source_db, "envforge_subset_bad", rules=rules)
    assert not database_exists(source_db, "envforge_subset_bad")


SEED_SCHEMA = """
CREATE TABLE public.countries (code char(2) PRIMARY KEY, label text NOT NULL);
CREATE TYPE tier AS ENUM ('free', 'pro');
CREATE TABLE public.users (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE, first_name text NOT NULL, tier tier NOT NULL,
    country char(2) NOT NULL REFERENCES public.countries, referred_by int REFERENCES public.users,
    born date);
CREATE TABLE public.orders (id bigserial PRIMARY KEY, user_id int NOT NULL REFERENCES public.users,
    total numeric(10, 2) NOT NULL, placed_at timestamptz NOT NULL);
"""


def test_seed_schema_fixtures_and_synthetic_rows(pg_server: ServerAddress,
                                                 tmp_path: Path) -> None:
    (tmp_path / "schema.sql").write_text(SEED_SCHEMA)
    (tmp_path / "public.countries.csv").write_text("code,label\nDE,Germany\nFR,France\n")
    (tmp_path / "users.yaml").write_text(
        "public.users:\n  - {email: admin@example.com, first_name: Admin, tier: pro, "
        "country: DE}\n")
    target = pg_server.with_database("envforge_seeded")

    def seed(name: str, seed_value: int) -> None:
        seed_database(SeedRequest(
            target=target.with_database(name), schema_sql=tmp_path / "schema.sql",
            fixtures=[tmp_path / "public.countries.csv", tmp_path / "users.yaml"],
            generate={"public.orders": 200, "public.users": 50}, seed=seed_value,
            replace=True), __import__("logging").getLogger("test"))

    seed("envforge_seeded", 7)
    seed("envforge_seeded_again", 7)
    try:
        users = rows(target, "SELECT count(*), count(DISTINCT email) FROM public.users")[0]
        assert users == (51, 51)
        assert rows(target, "SELECT count(*) FROM public.orders")[0][0] == 200
        assert rows(target, "SELECT count(*) FROM public.orders o JOIN public.users u "
                            "ON u.id = o.user_id")[0][0] == 200
        again = target.with_database("envforge_seeded_again")
        assert table_digest(target, "public.orders") == table_digest(again, "public.orders")
    finally:
        drop_owned_database(target, "envforge_seeded")
        drop_owned_database(target, "envforge_seeded_again")


def test_seed_failure_leaves_nothing(pg_server: ServerAddress, tmp_path: Path) -> None:
    (tmp_path / "schema.sql").write_text(SEED_SCHEMA)
    # orders need users: none are generated and none loaded -> clear error, database dropped
    with pytest.raises(CopyFailedError, match="no rows in the table referenced by"):
        seed_database(SeedRequest(target=pg_server.with_database("envforge_seed_bad"),
                                  schema_sql=tmp_path / "schema.sql",
                                  generate={"public.orders": 5}),
                      __import__("logging").getLogger("test"))
    assert not database_exists(pg_server, "envforge_seed_bad")


def test_snapshot_then_restore(source_db: ServerAddress, tmp_path: Path) -> None:
    cloned, _ = clone(source_db, "envforge_snap_src")
    store = LocalDirectoryStore(tmp_path / "snapshots")
    restored = source_db.with_database("envforge_snap_dst")
    try:
        info = take_snapshot(source_db, "envforge_snap_src", store, "prod-anon")
        assert info.size_bytes > 0 and info.origin["strategy"] == "clone"
        assert [i.name for i in store.list()] == ["prod-anon"]
        restore_snapshot(store, "prod-anon", restored, {"environment": "snap"})
        for table in ("crm.customers", "sales.orders", "crm.tickets"):
            assert table_digest(cloned, table) == table_digest(restored, table)
        with pytest.raises(UnsafeTargetError, match="not created by envforge"):
            take_snapshot(source_db, "prod", store, "raw-production")
        with pytest.raises(SnapshotError, match="not found"):
            restore_snapshot(store, "missing", source_db.with_database("envforge_x"), {})
    finally:
        drop_owned_database(cloned, "envforge_snap_src")
        drop_owned_database(restored, "envforge_snap_dst")


def test_restore_of_a_damaged_snapshot_leaves_nothing(pg_server: ServerAddress,
                                                      tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    (tmp_path / "broken.dump").write_bytes(b"PGDMP not really a dump")
    (tmp_path / "broken.json").write_text(
        '{"name": "broken", "database": "x", "created": "now", "size_bytes": 1, "origin": {}}')
    with pytest.raises(CopyFailedError, match="restoring the snapshot"):
        restore_snapshot(store, "broken", pg_server.with_database("envforge_broken"), {})
    assert not database_exists(pg_server, "envforge_broken")
    with psycopg.connect(pg_server.conninfo()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
