"""Bad input: a clear error naming what is wrong, and no target database left behind."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from envforge.db.clone import CloneRequest, clone_database
from envforge.db.connection import ServerAddress
from envforge.db.rules import parse_rules
from envforge.db.safety import drop_owned_database, ownership_marker
from envforge.errors import (
    CopyFailedError,
    DatabaseUnreachableError,
    PersonalDataError,
    RulesError,
    TemporaryError,
    UnsafeTargetError,
)

from .conftest import HERE, TEST_KEY, create_database, database_exists
from .test_clone import RULES

pytestmark = pytest.mark.postgres


def attempt(source: ServerAddress, name: str, rules: object = RULES, **kw: object) -> None:
    request = CloneRequest(source, source.with_database(name), rules, TEST_KEY,  # type: ignore[arg-type]
                           jobs=1, **kw)  # type: ignore[arg-type]
    clone_database(request)


def with_rules(extra: dict[str, object]) -> object:
    import yaml

    data = yaml.safe_load((HERE / "realistic_rules.yaml").read_text())
    for table, columns in extra.items():
        data["tables"].setdefault(table, {}).update(columns)  # type: ignore[union-attr]
    return parse_rules(data)


def test_unknown_tables_and_columns_are_all_listed(source_db: ServerAddress) -> None:
    rules = with_rules({"crm.customer": {"email": "email"}, "crm.customers": {"emial": "email"}})
    with pytest.raises(RulesError) as caught:
        attempt(source_db, "envforge_bad_1", rules)
    message = str(caught.value)
    assert "'crm.customer' does not exist" in message and "crm.customers" in message
    assert "crm.customers.emial: no such column (did you mean email" in message
    assert not database_exists(source_db, "envforge_bad_1")


def test_transformer_that_does_not_fit_the_type(source_db: ServerAddress) -> None:
    rules = with_rules({"crm.accounts": {"balance": "email"},
                        "crm.customers": {"tier": {"transform": "noise", "days": 3}}})
    with pytest.raises(RulesError) as caught:
        attempt(source_db, "envforge_bad_2", rules)
    assert "crm.accounts.balance: transformer 'email' does not fit type numeric(12,2)" \
        in str(caught.value)
    assert "crm.customers.tier: transformer 'noise' does not fit" in str(caught.value)
    assert not database_exists(source_db, "envforge_bad_2")


def test_strict_mode_stops_on_uncovered_personal_data(source_db: ServerAddress) -> None:
    with pytest.raises(PersonalDataError) as caught:
        attempt(source_db, "envforge_bad_3", parse_rules({"tables": {}}))
    text = str(caught.value)
    for column in ("crm.customers.email", "crm.customers.profile", "crm.tickets.body",
                   "sales.orders.shipping_address", "hr.employees.full_name"):
        assert column in text
    assert "crm.accounts.kind" not in text and "public.countries" not in text
    assert "suggested rule: text" in text
    assert "@mailbox.test" not in text  # never a sampled value in the message
    assert not database_exists(source_db, "envforge_bad_3")


def test_unreachable_source(source_db: ServerAddress) -> None:
    dead = ServerAddress(host="127.0.0.1", port=1, dbname="prod")
    with pytest.raises(DatabaseUnreachableError) as caught:
        clone_database(CloneRequest(dead, source_db.with_database("envforge_bad_4"), RULES,
                                    TEST_KEY))
    assert "127.0.0.1:1/prod" in str(caught.value) and isinstance(caught.value, TemporaryError)
    assert not database_exists(source_db, "envforge_bad_4")


def test_source_as_target_even_through_another_host_name(source_db: ServerAddress) -> None:
    alias = ServerAddress(host="localhost", port=source_db.port, dbname=source_db.dbname)
    with pytest.raises(UnsafeTargetError, match="is the source database"):
        clone_database(CloneRequest(source_db, alias, RULES, TEST_KEY))
    assert database_exists(source_db, "prod")


def test_existing_database_not_created_by_envforge(source_db: ServerAddress) -> None:
    create_database(source_db, "someone_elses", "CREATE TABLE keep (x int); "
                                                "INSERT INTO keep VALUES (1)")
    with pytest.raises(UnsafeTargetError, match="was not created by envforge"):
        attempt(source_db, "someone_elses", replace=True)
    with psycopg.connect(source_db.with_database("someone_elses").conninfo()) as conn:
        assert conn.execute("SELECT x FROM keep").fetchall() == [(1,)]


def test_key_in_rules_file_is_refused() -> None:
    with pytest.raises(RulesError, match="must not be in the rules file"):
        parse_rules({"key": "s3cret", "tables": {}})


def test_value_refused_by_the_target_names_the_table(source_db: ServerAddress) -> None:
    # a constant of -1 breaks CHECK (quantity > 0) while the rows stream in.
    rules = with_rules({"sales.order_lines": {"quantity": {"transform": "redact",
                                                           "value": "-1"}}})
    with pytest.raises(CopyFailedError) as caught:
        attempt(source_db, "envforge_bad_5", rules)
    assert "copying sales.order_lines failed" in str(caught.value)
    assert "check constraint" in str(caught.value)
    assert not database_exists(source_db, "envforge_bad_5")


def test_constraint_failing_after_the_data(pg_server: ServerAddress) -> None:
    source = create_database(pg_server, "prod_codes", """
        CREATE TABLE codes (id int PRIMARY KEY, code text NOT NULL);
        CREATE UNIQUE INDEX codes_lower ON codes (lower(code));
        INSERT INTO codes SELECT g, 'code-' || g FROM generate_series(1, 50) g;""")
    rules = parse_rules({"tables": {"codes": {"code": {"transform": "regex_replace",
                                                        "pattern": "-.*", "replacement": ""}}}})
    with pytest.raises(CopyFailedError) as caught:
        attempt(source, "envforge_bad_6", rules)
    assert "post-data" in str(caught.value) and "codes_lower" in str(caught.value)
    assert not database_exists(pg_server, "envforge_bad_6")


@pytest.mark.slow
def test_connection_dropped_mid_copy(pg_server: ServerAddress) -> None:
    source = create_database(pg_server, "prod_big", """
        CREATE TABLE events (id bigint PRIMARY KEY, payload text NOT NULL);
        INSERT INTO events SELECT g, repeat('x', 200) FROM generate_series(1, 400000) g;""")
    rules = parse_rules({"tables": {"events": {"payload": "passthrough"}}})
    killed: list[int] = []
    done = threading.Event()

    def kill_the_copy() -> None:
        # Keep terminating every COPY of the source until the clone gives up: the table may be
        # read in several slices, and one kill could land between two of them.
        with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
            for _ in range(800):  # bounded: 40 s at most
                if done.is_set():
                    return
                found = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                    "datname = 'prod_big' AND query LIKE 'COPY%%events%%TO STDOUT%%'").fetchall()
                if found:
                    killed.append(len(found))
                time.sleep(0.02)

    killer = threading.Thread(target=kill_the_copy)
    killer.start()
    try:
        with pytest.raises(CopyFailedError) as caught:
            attempt(source, "envforge_bad_7", rules)
    finally:
        done.set()
        killer.join()
    assert killed, "the copy was never seen running"
    # psql reports the kill as the server's FATAL message or, when the socket closes before
    # psql reads it, as a closed connection: both name the table and the source side.
    assert re.search(r"copying public\.events( \[\d+/\d+\])? failed: source: (FATAL: +"
                     r"terminating connection|.*server closed the connection unexpectedly)",
                     str(caught.value))
    assert not database_exists(pg_server, "envforge_bad_7")


CLONE_IN_A_CHILD = """
import sys
from envforge.db.clone import CloneRequest, clone_database
from envforge.db.connection import ServerAddress
from envforge.db.rules import parse_rules
if __name__ == "__main__":
    server = ServerAddress("127.0.0.1", int(sys.argv[1]))
    rules = parse_rules({"tables": {"events": {"payload": "passthrough"}}})
    clone_database(CloneRequest(server.with_database(sys.argv[2]),
                                server.with_database(sys.argv[3]), rules, b"k" * 32, jobs=1))
"""


def clone_child_copying(server: ServerAddress, tmp_path: Path, source: str,
                        target: str) -> subprocess.Popen[str]:
    """A clone of a 400,000-row ``source`` into ``target`` in a child process, returned once
    it is copying rows (so a signal lands mid-copy)."""
    create_database(server, source, """
        CREATE TABLE events (id bigint PRIMARY KEY, payload text NOT NULL);
        INSERT INTO events SELECT g, repeat('y', 200) FROM generate_series(1, 400000) g;""")
    script = tmp_path / "clone_child.py"
    script.write_text(CLONE_IN_A_CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(server.port), source, target],
                             stderr=subprocess.PIPE, text=True)
    try:
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            for _ in range(400):  # bounded: 20 s at most
                if conn.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s "
                                "AND query LIKE 'COPY%%events%%'", (source,)).fetchone():
                    return child
                time.sleep(0.05)
        pytest.fail("the clone never started copying")
    except BaseException:
        child.kill()
        child.communicate(timeout=60)
        raise


@pytest.mark.slow
def test_interrupted_clone_leaves_no_target(pg_server: ServerAddress, tmp_path: Path) -> None:
    child = clone_child_copying(pg_server, tmp_path, "prod_term", "envforge_term")
    try:
        assert database_exists(pg_server, "envforge_term")
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0 and "terminated (SIGTERM)" in err
    assert not database_exists(pg_server, "envforge_term")


@pytest.mark.slow
def test_a_clone_killed_mid_copy_never_blocks_its_name(pg_server: ServerAddress,
                                                       tmp_path: Path) -> None:
    """SIGKILL leaves no chance to clean up: the half-copied target stays, marked as being
    built by a process that is gone. The next clone of that name (no --replace) drops it and
    makes a whole copy, instead of refusing with 'already exists'; a finished clone's marker
    no longer names a builder, so it is never taken for such a leftover."""
    child = clone_child_copying(pg_server, tmp_path, "prod_kill", "envforge_kill")
    child.kill()
    child.communicate(timeout=60)
    assert database_exists(pg_server, "envforge_kill")  # the leftover of the killed clone
    rules = parse_rules({"tables": {"events": {"payload": "passthrough"}}})
    clone_database(CloneRequest(pg_server.with_database("prod_kill"),
                                pg_server.with_database("envforge_kill"), rules, TEST_KEY,
                                jobs=1))
    with psycopg.connect(pg_server.with_database("envforge_kill").conninfo(),
                         autocommit=True) as conn:
        count = conn.execute("SELECT count(*) FROM events").fetchone()
    assert count is not None and count[0] == 400000
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        marker = ownership_marker(conn, "envforge_kill")
    assert marker is not None and "building" not in marker
    with pytest.raises(UnsafeTargetError, match="already exists"):  # a whole clone: kept
        clone_database(CloneRequest(pg_server.with_database("prod_kill"),
                                    pg_server.with_database("envforge_kill"), rules, TEST_KEY,
                                    jobs=1))
    drop_owned_database(pg_server, "envforge_kill")


def test_a_refused_replace_keeps_the_database_it_would_replace(
        source_db: ServerAddress) -> None:
    """The target is made early (while the source is read) only when no database of that
    name exists: a `replace` that strict mode refuses leaves the old clone as it was."""
    attempt(source_db, "envforge_bad_keep", replace=True)
    before = rows_in(source_db.with_database("envforge_bad_keep"))
    with pytest.raises(PersonalDataError):
        attempt(source_db, "envforge_bad_keep", parse_rules({"tables": {}}), replace=True)
    assert database_exists(source_db, "envforge_bad_keep")
    assert rows_in(source_db.with_database("envforge_bad_keep")) == before > 0
    drop_owned_database(source_db, "envforge_bad_keep")


def test_a_refused_clone_drops_its_early_target_and_leaves_no_session(
        source_db: ServerAddress) -> None:
    """The early target (created, with the schema's tables, while the rules were checked)
    is dropped on a refusal, and no envforge session stays behind on either side."""
    with pytest.raises(PersonalDataError):
        attempt(source_db, "envforge_bad_early", parse_rules({"tables": {}}))
    assert not database_exists(source_db, "envforge_bad_early")
    left: list[str] = []
    with psycopg.connect(source_db.conninfo(), autocommit=True) as conn:
        for _ in range(100):  # bounded (10 s): a session's end is seen by the server soon
            left = [str(r[0]) for r in conn.execute(
                "SELECT datname FROM pg_stat_activity WHERE application_name = 'envforge' "
                "AND pid <> pg_backend_pid() "
                "AND datname IN ('prod', 'postgres', 'envforge_bad_early')")]
            if not left:
                break
            time.sleep(0.1)
    assert not left, left


def rows_in(address: ServerAddress) -> int:
    with psycopg.connect(address.conninfo(), autocommit=True) as conn:
        count = conn.execute("SELECT count(*) FROM crm.customers").fetchone()
    assert count is not None
    return int(count[0])
