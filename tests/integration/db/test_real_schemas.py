"""Issue 14 on a schema with what real ones have (features_schema.sql): foreign keys declared
on partitions, materialized views, grants, bytea images, credentials, empty strings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from envforge.db.catalog import read_catalog
from envforge.db.classify import classify_columns
from envforge.db.clone import CloneReport, CloneRequest, clone_database
from envforge.db.connection import ServerAddress, read_only_snapshot
from envforge.db.coverage import resolve_coverage
from envforge.db.plan import make_plan, suggested_rules
from envforge.db.rules import Rules, parse_rules
from envforge.db.safety import create_owned_database, drop_owned_database
from envforge.db.schema import dump_schema, restore_section
from envforge.errors import CopyFailedError, RulesError

from .conftest import HERE, TEST_KEY, create_database, database_exists
from .test_clone import data_dump, rows

pytestmark = pytest.mark.postgres

FEATURE_RULES: dict[str, Any] = {
    "tables": {
        "address": {"address": "address", "address2": "address", "postal_code": "postal_code",
                    "phone": "phone"},
        "customer": {"first_name": "first_name", "last_name": "last_name", "email": "email",
                     "born_on": "date_of_birth", "signup_ip": "ip"},
        "staff": {"first_name": "first_name", "last_name": "last_name",
                  "username": "username", "password": "hash", "picture": "null",
                  "api_token": "hash"},
        "account": {"email": "email"},
        "message": {"body": "scrub"},
        "city": {"city": "passthrough"},
    }
}


@pytest.fixture(scope="module")
def features_db(pg_server: ServerAddress) -> ServerAddress:
    return create_database(pg_server, "features", (HERE / "features_schema.sql").read_text())


def clone(source: ServerAddress, name: str, rules: Rules, jobs: int = 1) -> CloneReport:
    target = source.with_database(name)
    drop_owned_database(target, name)
    return clone_database(CloneRequest(source, target, rules, TEST_KEY, jobs=jobs,
                                       parallel_min_bytes=0))


def with_subset(subset: dict[str, Any]) -> Rules:
    return parse_rules(dict(FEATURE_RULES, subset=subset))


@pytest.fixture(scope="module")
def full_clone(features_db: ServerAddress) -> tuple[ServerAddress, CloneReport]:
    report = clone(features_db, "envforge_features_full", parse_rules(FEATURE_RULES), jobs=2)
    return features_db.with_database(report.database), report


# --- problem 1: foreign keys declared on partitions -------------------------------------------


def test_catalog_sees_foreign_keys_declared_on_partitions(features_db: ServerAddress) -> None:
    with read_only_snapshot(features_db) as conn:
        catalog = read_catalog(conn)
    keys = {(fk.child, fk.child_columns, fk.parent) for fk in catalog.foreign_keys}
    assert ("public.payment", ("customer_id",), "public.customer") in keys
    assert ("public.payment", ("staff_id",), "public.staff") in keys
    # declared on two partitions, one logical key each
    assert sum(1 for fk in catalog.foreign_keys if fk.child == "public.payment") == 2


def test_subset_of_a_partitioned_table_keeps_every_foreign_key_valid(
        features_db: ServerAddress) -> None:
    rules = with_subset({"start": [{"table": "customer", "percent": 10}]})
    report = clone(features_db, "envforge_features_subset", rules, jobs=2)
    target = features_db.with_database(report.database)
    customers = rows(target, "SELECT count(*) FROM customer")[0][0]
    payments = rows(target, "SELECT count(*) FROM payment")[0][0]
    assert 0 < customers < 500 and 0 < payments < 4000
    assert rows(target, "SELECT count(*) FROM payment p LEFT JOIN customer c USING "
                        "(customer_id) WHERE c.customer_id IS NULL")[0][0] == 0
    validated = rows(target, "SELECT count(*) FILTER (WHERE convalidated), count(*) FROM "
                             "pg_constraint WHERE contype = 'f'")[0]
    assert validated[0] == validated[1] == 7  # 4 on the partitions, 3 on plain tables
    drop_owned_database(target, report.database)


def test_parallel_restore_failure_names_the_real_error(features_db: ServerAddress,
                                                       tmp_path: Path) -> None:
    """pg_restore --jobs ends with "a worker process died unexpectedly"; the error must say
    which constraint failed."""
    target = features_db.with_database("envforge_features_broken")
    drop_owned_database(target, target.dbname)
    create_owned_database(target, target.dbname, {"environment": "test"})
    try:
        schema = tmp_path / "schema.dump"
        dump_schema(features_db, None, schema)
        restore_section(target, schema, "pre-data")
        with psycopg.connect(target.conninfo(), autocommit=True) as conn:
            conn.execute("INSERT INTO payment_p2022_01 VALUES (1, 999, 999, 1, '2022-01-05')")
        with pytest.raises(CopyFailedError) as caught:
            restore_section(target, schema, "post-data", jobs=2)
        assert "violates foreign key constraint" in str(caught.value)
    finally:
        drop_owned_database(target, target.dbname)


def test_others_empty_keeps_the_rows_that_reference_the_subset(
        features_db: ServerAddress) -> None:
    rules = with_subset({"start": [{"table": "customer", "percent": 20}], "children_limit": 0,
                         "others": "empty"})
    report = clone(features_db, "envforge_features_empty", rules)
    target = features_db.with_database(report.database)
    assert rows(target, "SELECT count(*) FROM payment")[0][0] > 0  # reference the subset
    assert rows(target, "SELECT count(*) FROM film")[0][0] == 0  # not reached: empty
    assert rows(target, "SELECT count(*) FROM payment p LEFT JOIN customer c USING "
                        "(customer_id) WHERE c.customer_id IS NULL")[0][0] == 0
    drop_owned_database(target, report.database)


# --- problem 2 and 6: strict mode and its suggestions -------------------------------------------


def _stops(source: ServerAddress, rules: Rules) -> dict[str, str]:
    with read_only_snapshot(source) as conn:
        catalog = read_catalog(conn)
        decisions = classify_columns(conn, catalog, resolve_coverage(rules, catalog), rules)
    return {f"{d.table}.{d.column}": d.detail for d in decisions if d.stops}


def test_strict_mode_knows_credentials_binary_data_and_birth_dates(
        features_db: ServerAddress) -> None:
    stops = _stops(features_db, Rules())
    for column in ("address.postal_code", "staff.username", "staff.password", "staff.picture",
                   "staff.api_token", "customer.born_on", "address.address2"):
        assert f"public.{column}" in stops, column
    for key in ("customer.address_id", "staff.address_id", "payment.customer_id",
                "customer.active", "film.rating"):
        assert f"public.{key}" not in stops, key


def test_plan_suggestions_are_accepted_by_clone_as_they_are(features_db: ServerAddress) -> None:
    plan = make_plan(features_db, Rules(), TEST_KEY)
    fragment = suggested_rules(plan.decisions)
    rules = parse_rules(yaml.safe_load(fragment))
    assert not rules.problems
    assert "picture: {transform: 'null'}" in fragment  # nullable image: NULL, not a bare null
    assert "password: hash" in fragment and "username: username" in fragment
    report = clone(features_db, "envforge_features_suggested", rules)
    target = features_db.with_database(report.database)
    assert rows(target, "SELECT count(*) FROM payment")[0][0] == 4000
    assert rows(target, "SELECT count(*) FROM staff WHERE picture IS NULL")[0][0] == 4
    drop_owned_database(target, report.database)


def test_invalid_pattern_is_one_line_naming_the_column_before_anything_is_created(
        features_db: ServerAddress) -> None:
    rules = parse_rules({"tables": dict(FEATURE_RULES["tables"], film={
        "title": {"transform": "regex_replace", "pattern": "(unclosed"}})})
    for attempt in (lambda: make_plan(features_db, rules, TEST_KEY),
                    lambda: clone(features_db, "envforge_features_regex", rules)):
        with pytest.raises(RulesError) as caught:
            attempt()
        message = str(caught.value)
        assert "public.film.title" in message and "regular expression" in message
        assert "\n" not in message and "Traceback" not in message
    assert not database_exists(features_db, "envforge_features_regex")


def test_unknown_rule_kind_does_not_hide_the_other_problems(features_db: ServerAddress) -> None:
    rules = parse_rules({"tables": dict(FEATURE_RULES["tables"], film={"title": "scrambled",
                                                                      "titel": "text"})})
    with pytest.raises(RulesError) as caught:
        clone(features_db, "envforge_features_kind", rules)
    message = str(caught.value)
    assert "public.film.title" in message and "'scrambled'" in message
    assert "public.film.titel: no such column" in message


# --- problems 3, 4, 5 on a full clone ----------------------------------------------------------


def test_materialized_views_are_populated(full_clone: tuple[ServerAddress, CloneReport]) -> None:
    target, _ = full_clone
    total = rows(target, "SELECT sum(payments) FROM customer_totals")[0][0]
    assert total == 4000


def test_owners_and_grants_are_reported(full_clone: tuple[ServerAddress, CloneReport]) -> None:
    _, report = full_clone
    said = " ".join(report.not_copied)
    assert "reporting" in said and "grants" in said


def test_empty_stays_empty_and_null_stays_null(
        features_db: ServerAddress, full_clone: tuple[ServerAddress, CloneReport]) -> None:
    target, _ = full_clone
    src = rows(features_db, "SELECT count(*) FILTER (WHERE address2 = ''), "
                            "count(*) FILTER (WHERE address2 IS NULL) FROM address")[0]
    out = rows(target, "SELECT count(*) FILTER (WHERE address2 = ''), "
                       "count(*) FILTER (WHERE address2 IS NULL) FROM address")[0]
    assert src == out and src[0] == 400
    assert rows(target, "SELECT count(*) FROM staff WHERE picture IS NOT NULL")[0][0] == 0


def test_scrubbed_text_joins_with_the_column_it_mentions(
        full_clone: tuple[ServerAddress, CloneReport]) -> None:
    target, _ = full_clone
    accounts = {r[0] for r in rows(target, "SELECT email FROM account")}
    mentioned = [m for (body,) in rows(target, "SELECT body FROM message")
                 for m in re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", body)]
    assert len(mentioned) == 300 and all(m in accounts for m in mentioned)


def test_no_source_value_of_an_identifying_kind_is_anywhere_in_the_clone(
        features_db: ServerAddress, full_clone: tuple[ServerAddress, CloneReport]) -> None:
    """The leak scan of the issue: every source value of every covered identifying column,
    searched in the whole target."""
    target, _ = full_clone
    dump = data_dump(target)
    identifying = [("address", "address"), ("address", "phone"), ("customer", "email"),
                   ("customer", "signup_ip"), ("staff", "username"), ("staff", "password"),
                   ("staff", "api_token"), ("account", "email")]
    checked = 0
    for table, column in identifying:
        for (value,) in rows(features_db, f"SELECT DISTINCT {column}::text FROM {table} "
                                          f"WHERE {column} IS NOT NULL AND {column}::text <> ''"):
            assert value not in dump, f"{table}.{column} value leaked"
            checked += 1
    assert checked > 1500
    for card in ("4111 1111 1111 1111", "+1 415 555 0001"):
        assert card not in dump
