"""Clone the realistic schema and check what the issue demands: no raw covered value anywhere
in the target, foreign keys valid, counts equal, determinism per key."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import psycopg
import pytest

from envforge.db import clone as clone_module
from envforge.db.clone import CloneReport, CloneRequest, clone_database
from envforge.db.connection import ServerAddress
from envforge.db.rules import load_rules
from envforge.db.safety import drop_owned_database
from envforge.db.schema import pg_tool

from .conftest import HERE, OTHER_KEY, TEST_KEY

pytestmark = pytest.mark.postgres
RULES = load_rules(HERE / "realistic_rules.yaml")
TABLES = ["public.countries", "crm.customers", "crm.accounts", "crm.tickets", "sales.orders",
          "sales.order_lines", "hr.employees"]


def clone(source: ServerAddress, name: str, key: bytes = TEST_KEY, jobs: int = 1,
          rules: Any = RULES) -> tuple[ServerAddress, CloneReport]:
    target = source.with_database(name)
    drop_owned_database(target, name)
    report = clone_database(CloneRequest(source, target, rules, key, jobs=jobs,
                                         parallel_min_bytes=0))
    return target, report


def rows(address: ServerAddress, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(address.conninfo()) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def table_digest(address: ServerAddress, table: str) -> str:
    return str(rows(address, f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) "
                             f"FROM {table} t")[0][0])


def data_dump(address: ServerAddress) -> str:
    out = subprocess.run([pg_tool("pg_dump"), "--data-only", f"--dbname={address.conninfo()}"],
                         capture_output=True, text=True, check=True)
    return out.stdout


# Calls of the two-lane copy of small tables (envforge/db/small_lanes.py) in the jobs=2 clone.
TWO_LANE_CALLS: list[int] = []


@pytest.fixture(scope="module")
def cloned(source_db: ServerAddress) -> tuple[ServerAddress, CloneReport]:
    real = clone_module.run_on_two_lanes  # type: ignore[attr-defined]

    def counted(*args: Any) -> Any:
        TWO_LANE_CALLS.append(len(args[4]))  # the small tasks shared out
        return real(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clone_module, "run_on_two_lanes", counted)
        return clone(source_db, "envforge_test_a", jobs=2)  # the parallel path, once


def test_no_raw_value_of_a_covered_column_appears_anywhere(
        source_db: ServerAddress, cloned: tuple[ServerAddress, CloneReport]) -> None:
    target, _ = cloned
    dump = data_dump(target)
    raw: set[str] = set()
    for sql in ("SELECT email, phone, iban, host(last_login_ip) FROM crm.customers",
                "SELECT contact_email, shipping_address FROM sales.orders",
                "SELECT email FROM hr.employees"):
        for row in rows(source_db, sql):
            raw.update(v for v in row if v)
    # Full scan by extraction: every e-mail, phone, IBAN, IP and address-like token of the dump.
    found = set(re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", dump))
    found |= set(re.findall(r"\+\d[\d ]{8,}\d", dump))
    found |= set(re.findall(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b", dump))
    found |= set(re.findall(r"\b(?:\d{1,3}\.){3}\d{1,3}\b", dump))
    found |= set(re.findall(r"\d+ \w+ Street, Springfield", dump))
    leaked = raw & found
    assert not leaked, f"{len(leaked)} raw values leaked, e.g. {sorted(leaked)[:3]}"
    assert "mailbox.test" not in dump and "+1 415 555" not in dump and "WEST" not in dump
    assert "Müller-Łukasz" not in dump and "Zoë Müller" not in dump  # non-ASCII, escapes
    # Free text: every ticket body, whole, must be gone (they embed e-mails, phones, IBANs).
    bodies = [r[0] for r in rows(source_db, "SELECT body FROM crm.tickets")]
    assert not [b for b in bodies if b in dump]
    assert len(found) > 1000  # the extraction really saw the fakes


def test_values_changed_row_by_row(source_db: ServerAddress,
                                   cloned: tuple[ServerAddress, CloneReport]) -> None:
    target, _ = cloned
    src = {r[0]: r[1:] for r in rows(source_db, "SELECT id, first_name, national_id, birth_date "
                                                "FROM crm.customers")}
    dst = {r[0]: r[1:] for r in rows(target, "SELECT id, first_name, national_id, birth_date "
                                             "FROM crm.customers")}
    assert src.keys() == dst.keys()
    same_name = sum(1 for k in src if src[k][0] == dst[k][0])
    assert same_name < len(src) * 0.02  # a fake may coincide with a real name, rarely
    assert all(dst[k][1] != src[k][1] and dst[k][1].endswith(src[k][1][-2:]) for k in src)
    shifts = [abs((dst[k][2] - src[k][2]).days) for k in src]
    assert min(shifts) >= 1 and max(shifts) <= 200


def test_counts_equal_and_foreign_keys_valid(source_db: ServerAddress,
                                             cloned: tuple[ServerAddress, CloneReport]) -> None:
    target, report = cloned
    for table in TABLES:
        expected = rows(source_db, f"SELECT count(*) FROM {table}")[0][0]
        assert rows(target, f"SELECT count(*) FROM {table}")[0][0] == expected
        assert report.tables[table] == expected
    fk_sql = ("SELECT count(*) FILTER (WHERE convalidated), count(*) FROM pg_constraint "
              "WHERE contype = 'f' AND conparentid = 0")
    validated, total = rows(target, fk_sql)[0]
    assert total == rows(source_db, fk_sql)[0][1] and validated == total and total >= 8
    # the transformed key crm.customers.email was propagated to crm.tickets.customer_email
    orphans = rows(target, "SELECT count(*) FROM crm.tickets t LEFT JOIN crm.customers c "
                           "ON c.email = t.customer_email WHERE c.id IS NULL")[0][0]
    assert orphans == 0
    # and joins on e-mail across tables still match (same fake for the same e-mail)
    assert rows(target, "SELECT count(*) FROM sales.orders o JOIN crm.customers c "
                        "ON c.email = o.contact_email AND c.id = o.customer_id")[0][0] == \
        rows(source_db, "SELECT count(*) FROM sales.orders")[0][0]


def test_generated_identity_and_sequences(cloned: tuple[ServerAddress, CloneReport]) -> None:
    target, _ = cloned
    mismatched = rows(target, "SELECT count(*) FROM crm.customers "
                              "WHERE display_label <> first_name || ' ' || last_name")[0][0]
    assert mismatched == 0
    with psycopg.connect(target.conninfo()) as conn:
        new_id = conn.execute("INSERT INTO crm.customers (email, first_name, last_name) "
                              "VALUES ('new@example.com', 'A', 'B') RETURNING id").fetchone()
        conn.rollback()
    assert new_id is not None and new_id[0] == 2001
    comment = rows(target, "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                           "WHERE datname = current_database()")[0][0]
    assert comment.startswith("envforge:owned")


def test_tables_keep_their_own_storage_options(
        source_db: ServerAddress, cloned: tuple[ServerAddress, CloneReport]) -> None:
    """Autovacuum is paused on the target's tables while they are loaded: nothing of that may
    be left behind."""
    target, _ = cloned
    sql = ("SELECT c.oid::regclass::text, c.reloptions FROM pg_class c JOIN pg_namespace n "
           "ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN "
           "('pg_catalog', 'information_schema') ORDER BY 1")
    assert rows(target, sql) == rows(source_db, sql)


def test_same_key_same_output_other_key_other_output(
        source_db: ServerAddress, cloned: tuple[ServerAddress, CloneReport]) -> None:
    first, _ = cloned
    assert TWO_LANE_CALLS  # first copied its small tables on two lanes, again on one
    again, _ = clone(source_db, "envforge_test_b")
    other, _ = clone(source_db, "envforge_test_c", key=OTHER_KEY)
    try:
        for table in TABLES:
            assert table_digest(first, table) == table_digest(again, table), table
        for table in ("crm.customers", "crm.tickets", "sales.orders", "hr.employees"):
            assert table_digest(first, table) != table_digest(other, table), table
        assert table_digest(first, "public.countries") == table_digest(other, "public.countries")
    finally:
        drop_owned_database(again, "envforge_test_b")
        drop_owned_database(other, "envforge_test_c")

