"""A golden copy is what its rules say and belongs to one source (issue 26): a rules change
rebuilds it, another source's golden is refused however the names collide, retention and
branching go by envforge's record (the marker), never by a name that looks alike, and a
fresh golden is branched without waiting for a rebuild."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from envforge.cli import main
from envforge.db.branch import (
    branch_database,
    branch_from_golden,
    build_golden,
    golden_database_name,
    golden_info,
    golden_lock,
    previous_goldens,
    rollback_golden,
    staging_database_name,
)
from envforge.db.clone import CloneRequest, clone_database
from envforge.db.connection import ServerAddress
from envforge.db.rules import Rules, parse_rules
from envforge.db.safety import drop_owned_database
from envforge.errors import UnsafeTargetError

from .conftest import SCRIPT, TEST_KEY, _free_port, create_database, database_exists
from .test_clone import rows

pytestmark = pytest.mark.postgres

SCHEMA = """CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, plan text);
INSERT INTO users SELECT g, 'person' || g || '@{tag}.example.net', 'basic'
FROM generate_series(1, {n}) g;"""
EMAIL_KEPT = parse_rules({"strict": False, "tables": {"users": {"email": "passthrough"}}})
EMAIL_FAKED = parse_rules({"strict": False, "tables": {"users": {"email": "email"}}})
HOUR = timedelta(hours=1)


def make_source(server: ServerAddress, name: str, tag: str, n: int = 300) -> ServerAddress:
    return create_database(server, name, SCHEMA.format(tag=tag, n=n))


def request(source: ServerAddress, envs: ServerAddress, golden: str,
            rules: Rules = EMAIL_FAKED) -> CloneRequest:
    return CloneRequest(source, envs.with_database(golden_database_name(golden)), rules,
                        TEST_KEY, jobs=1)


def emails(address: ServerAddress) -> set[str]:
    return {r[0] for r in rows(address, "SELECT email FROM users")}


def drop_all(server: ServerAddress, *names: str) -> None:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cleanup_golden(server: ServerAddress, golden: str) -> None:
    for name in previous_goldens(server, golden):
        drop_owned_database(server, name)
    drop_owned_database(server, golden)


@pytest.fixture(scope="module")
def second_server() -> Iterator[ServerAddress]:
    """Another cluster (another system identifier) holding a database of the same name."""
    workdir = tempfile.mkdtemp(prefix="envforge-pg-second-")
    port = _free_port()
    started = subprocess.run(["bash", str(SCRIPT), "start", workdir, str(port)],
                             capture_output=True, text=True, check=False)
    if started.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(f"could not start a second PostgreSQL: {started.stderr}")
    try:
        yield ServerAddress(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", workdir], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_rules_change_rebuilds_the_golden_before_it_reaches_a_branch(
        pg_server: ServerAddress) -> None:
    """The issue's privacy defect: the e-mail column fixed in the rules, yet the next branch
    held every real e-mail through the fresh-looking golden."""
    source = make_source(pg_server, "ident_rules", "real")
    real = emails(source)
    first = branch_from_golden(request(source, pg_server, "ident-rules", EMAIL_KEPT),
                               "envforge_ident_rules_a", {}, HOUR, replace=True)
    assert first.built is not None
    assert emails(pg_server.with_database("envforge_ident_rules_a")) == real  # as ruled
    fixed = branch_from_golden(request(source, pg_server, "ident-rules", EMAIL_FAKED),
                               "envforge_ident_rules_b", {}, HOUR, replace=True)
    assert fixed.built is not None  # rebuilt: the rules digest differs
    branched = emails(pg_server.with_database("envforge_ident_rules_b"))
    assert len(branched) == len(real) and not branched & real
    # and a key change is a rebuild too (its fingerprint is part of the identity)
    other_key = CloneRequest(source, pg_server.with_database(golden_database_name(
        "ident-rules")), EMAIL_FAKED, b"yet-another-key-0123456789abcdef", jobs=1)
    rekeyed = branch_from_golden(other_key, "envforge_ident_rules_b", {}, HOUR, replace=True)
    assert rekeyed.built is not None
    assert not emails(pg_server.with_database("envforge_ident_rules_b")) & branched
    for name in ("envforge_ident_rules_a", "envforge_ident_rules_b"):
        drop_owned_database(pg_server, name)
    cleanup_golden(pg_server, golden_database_name("ident-rules"))


def test_a_schema_change_of_the_source_rebuilds_the_golden(pg_server: ServerAddress) -> None:
    source = make_source(pg_server, "ident_schema", "s")
    req = request(source, pg_server, "ident-schema")
    assert branch_from_golden(req, "envforge_ident_schema", {}, HOUR,
                              replace=True).built is not None
    assert branch_from_golden(req, "envforge_ident_schema", {}, HOUR,
                              replace=True).built is None  # fresh: branched as it is
    with psycopg.connect(source.conninfo(), autocommit=True) as conn:
        conn.execute("ALTER TABLE users ADD COLUMN nickname text DEFAULT 'x'")
    again = branch_from_golden(req, "envforge_ident_schema", {}, HOUR, replace=True)
    assert again.built is not None
    assert rows(pg_server.with_database("envforge_ident_schema"),
                "SELECT count(nickname) FROM users")[0][0] == 300
    drop_owned_database(pg_server, "envforge_ident_schema")
    cleanup_golden(pg_server, golden_database_name("ident-schema"))


def test_the_same_database_name_on_two_servers_never_shares_a_golden(
        pg_server: ServerAddress, second_server: ServerAddress) -> None:
    here = make_source(pg_server, "twin", "here")
    there = make_source(second_server, "twin", "there")
    branch_from_golden(request(here, pg_server, "twin"), "envforge_twin_here", {}, HOUR,
                       replace=True)
    with pytest.raises(UnsafeTargetError, match="built from another source"):
        branch_from_golden(request(there, pg_server, "twin"), "envforge_twin_there", {}, HOUR,
                           replace=True)
    assert not database_exists(pg_server, "envforge_twin_there")
    # a refresh of that name from the other server is refused as well
    with pytest.raises(UnsafeTargetError, match="another source"):
        build_golden(request(there, pg_server, "twin"))
    # its own golden name works, and holds its own rows
    branch_from_golden(request(there, pg_server, "twin-there"), "envforge_twin_there", {},
                       HOUR, replace=True)
    assert rows(pg_server.with_database("envforge_twin_there"), "SELECT count(*) FROM users "
                "WHERE email LIKE '%there%'")[0][0] == 0  # faked, and not the other's either
    assert emails(pg_server.with_database("envforge_twin_there")) != emails(
        pg_server.with_database("envforge_twin_here"))
    for name in ("envforge_twin_here", "envforge_twin_there"):
        drop_owned_database(pg_server, name)
    for golden in ("twin", "twin-there"):
        cleanup_golden(pg_server, golden_database_name(golden))


def test_long_names_cut_to_fit_never_give_one_source_the_others_golden(
        pg_server: ServerAddress) -> None:
    long_a, long_b = "w" * 45 + "_one", "w" * 45 + "_two"
    a = make_source(pg_server, long_a, "one", n=50)
    b = make_source(pg_server, long_b, "two", n=70)
    branch_from_golden(request(a, pg_server, long_a, EMAIL_KEPT), "envforge_long_a", {}, HOUR,
                       replace=True)
    branch_from_golden(request(b, pg_server, long_b, EMAIL_KEPT), "envforge_long_b", {}, HOUR,
                       replace=True)
    assert emails(pg_server.with_database("envforge_long_b")) == emails(b)
    assert emails(pg_server.with_database("envforge_long_a")) == emails(a)
    for name in ("envforge_long_a", "envforge_long_b"):
        drop_owned_database(pg_server, name)
    for name in (long_a, long_b):
        cleanup_golden(pg_server, golden_database_name(name))
    drop_all(pg_server, long_a, long_b)


def test_an_explicit_golden_name_of_another_source_is_refused_in_one_line(
        pg_server: ServerAddress, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    alpha = make_source(pg_server, "ident_alpha", "alpha")
    beta = make_source(pg_server, "ident_beta", "beta")
    branch_from_golden(request(alpha, pg_server, "shared"), "envforge_alpha", {}, HOUR,
                       replace=True)
    (tmp_path / "rules.yaml").write_text("strict: false\ntables:\n  users:\n    email: email\n")
    monkeypatch.setenv("ENVFORGE_ANONYMISATION_KEY", TEST_KEY.decode())
    code = main(["db", "branch", "--source", beta.conninfo(), "--server", pg_server.conninfo(),
                 "-e", "beta", "--golden", "shared", "--rules", str(tmp_path / "rules.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("error: golden envforge_golden_shared") and "another source" \
        in err[-1]
    assert not database_exists(pg_server, "envforge_beta")
    drop_owned_database(pg_server, "envforge_alpha")
    cleanup_golden(pg_server, golden_database_name("shared"))


@pytest.mark.slow  # 10-15 s of database copies on a loaded machine: make test-fast skips it
def test_retention_drops_only_recorded_previous_copies(pg_server: ServerAddress) -> None:
    """Look-alike names (a foreign database, another live golden) are neither dropped nor
    able to make the command fail; the real previous copy is the one kept."""
    source = make_source(pg_server, "ident_keep", "keep", n=40)
    golden = golden_database_name("keep")
    other_golden = golden_database_name("keep_prev_x")  # another source's live golden
    other_source = make_source(pg_server, "ident_keep_other", "other", n=10)
    branch_from_golden(request(other_source, pg_server, "keep_prev_x"), "envforge_keep_o", {},
                       HOUR, replace=True)
    foreign = [f"{golden}_prev_20200101000000", f"{golden}_prev_zz",
               f"envforge_gprev_20200101000000000000_{staging_database_name(golden)[-8:]}"]
    for name in foreign:
        create_database(pg_server, name, "SELECT 1")
    build_golden(request(source, pg_server, "keep"), keep=1)
    build_golden(request(source, pg_server, "keep"), keep=1)
    build_golden(request(source, pg_server, "keep"), keep=1)
    kept = previous_goldens(pg_server, golden)
    assert len(kept) == 1
    for name in [*foreign, other_golden]:
        assert database_exists(pg_server, name), name
    # rollback puts the recorded previous copy back, and the current one becomes previous
    before = golden_info(pg_server, golden)
    assert before is not None
    restored = rollback_golden(pg_server, golden)
    assert restored == kept[0]
    after = golden_info(pg_server, golden)
    assert after is not None and after.built <= before.built
    assert len(previous_goldens(pg_server, golden)) == 1
    build_golden(request(source, pg_server, "keep"), keep=0)
    assert previous_goldens(pg_server, golden) == []
    for name in foreign:
        assert database_exists(pg_server, name), name
    drop_all(pg_server, *foreign)
    drop_owned_database(pg_server, "envforge_keep_o")
    cleanup_golden(pg_server, golden)
    cleanup_golden(pg_server, other_golden)


def test_a_copied_marker_does_not_make_a_database_envforge_s(pg_server: ServerAddress) -> None:
    """A person keeps a previous golden's data under another name, its envforge comment with
    it (pg_dump --create of it restored under another name carries the comment; here the
    comment is copied as such): retention and drop leave that database alone, because the
    marker records the oid of the database envforge created."""
    source = make_source(pg_server, "ident_copy", "copy", n=20)
    golden = golden_database_name("copy")
    build_golden(request(source, pg_server, "copy"), keep=1)
    build_golden(request(source, pg_server, "copy"), keep=1)
    [previous] = previous_goldens(pg_server, golden)
    kept_by_hand = "analytics_keep_copy"
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        comment = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                               "WHERE datname = %s", (previous,)).fetchone()
        assert comment is not None and '"oid"' in comment[0]
        conn.execute(f'DROP DATABASE IF EXISTS "{kept_by_hand}"')
        conn.execute(f'CREATE DATABASE "{kept_by_hand}"')
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(kept_by_hand), sql.Literal(comment[0])))
    assert previous_goldens(pg_server, golden) == [previous]
    build_golden(request(source, pg_server, "copy"), keep=0)  # retention: keep none
    assert database_exists(pg_server, kept_by_hand)
    with pytest.raises(UnsafeTargetError, match="not created by envforge"):
        drop_owned_database(pg_server, kept_by_hand)
    drop_all(pg_server, kept_by_hand)
    cleanup_golden(pg_server, golden)


def test_staging_and_previous_copies_cannot_be_branched(pg_server: ServerAddress) -> None:
    source = make_source(pg_server, "ident_stage", "stage", n=20)
    golden = golden_database_name("stage")
    # a staging copy as a rebuild leaves it half-way (a clone marked role: staging)
    staging = staging_database_name(golden)
    clone_database(CloneRequest(source, pg_server.with_database(staging), EMAIL_FAKED,
                                TEST_KEY, jobs=1, replace=True,
                                marker={"role": "staging", "golden": golden}))
    with pytest.raises(UnsafeTargetError, match="not a golden"):
        branch_database(pg_server, staging, "envforge_stage_x", {})
    # `--golden stage_next`: the name older envforge gave the staging copy of `stage`
    legacy = golden_database_name("stage_next")
    clone_database(CloneRequest(source, pg_server.with_database(legacy), EMAIL_FAKED,
                                TEST_KEY, jobs=1, replace=True,
                                marker={"role": "golden", "golden": golden}))
    with pytest.raises(UnsafeTargetError, match="not a golden"):
        branch_from_golden(request(source, pg_server, "stage_next"), "envforge_stage_x", {},
                           HOUR)
    assert not database_exists(pg_server, "envforge_stage_x")
    drop_owned_database(pg_server, staging)
    drop_owned_database(pg_server, legacy)


def test_a_fresh_golden_is_branched_while_a_rebuild_holds_the_build_lock(
        pg_server: ServerAddress) -> None:
    source = make_source(pg_server, "ident_fresh", "fresh", n=50)
    req = request(source, pg_server, "fresh")
    branch_from_golden(req, "envforge_fresh_a", {}, HOUR, replace=True)
    done = threading.Event()
    errors: list[BaseException] = []

    def branch() -> None:
        try:
            result = branch_from_golden(req, "envforge_fresh_b", {}, HOUR, replace=True)
            assert result.built is None
            done.set()
        except BaseException as e:
            errors.append(e)

    with golden_lock(pg_server, req.target.dbname):  # as a rebuild in progress holds it
        worker = threading.Thread(target=branch)
        worker.start()
        finished = done.wait(timeout=30)
    worker.join(timeout=60)
    assert not errors and finished, "the branch waited for a rebuild it did not need"
    assert emails(pg_server.with_database("envforge_fresh_b")) == emails(
        pg_server.with_database("envforge_fresh_a"))
    for name in ("envforge_fresh_a", "envforge_fresh_b"):
        drop_owned_database(pg_server, name)
    cleanup_golden(pg_server, req.target.dbname)


def test_rollback_of_an_action_drops_only_what_its_run_created(
        pg_server: ServerAddress) -> None:
    source = make_source(pg_server, "ident_run", "run", n=10)
    clone_database(CloneRequest(source, pg_server.with_database("envforge_ident_run"),
                                EMAIL_FAKED, TEST_KEY, jobs=1, replace=True,
                                marker={"run_id": "run-other"}))
    assert not drop_owned_database(pg_server, "envforge_ident_run", run_id="run-mine")
    assert database_exists(pg_server, "envforge_ident_run")
    assert drop_owned_database(pg_server, "envforge_ident_run", run_id="run-other")


@pytest.mark.parametrize("wal_log_below", [0, 1 << 40])  # FILE_COPY, WAL_LOG
def test_both_copy_strategies_give_the_goldens_rows(pg_server: ServerAddress,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    wal_log_below: int) -> None:
    monkeypatch.setattr("envforge.db.safety.WAL_LOG_BELOW_BYTES", wal_log_below)
    source = make_source(pg_server, "ident_strategy", "strategy", n=25)
    req = request(source, pg_server, "strategy", EMAIL_KEPT)
    branch_from_golden(req, "envforge_strategy", {}, HOUR, replace=True)
    assert emails(pg_server.with_database("envforge_strategy")) == emails(source)
    drop_owned_database(pg_server, "envforge_strategy")
    cleanup_golden(pg_server, req.target.dbname)


def test_an_environment_named_like_a_golden_never_replaces_it(pg_server: ServerAddress) -> None:
    """`-e golden-guard` maps to envforge_golden_guard: the golden of that name survives a
    clone or branch with replace."""
    source = make_source(pg_server, "ident_guard", "guard", n=15)
    req = request(source, pg_server, "guard")
    branch_from_golden(req, "envforge_guard_env", {}, HOUR, replace=True)
    before = golden_info(pg_server, req.target.dbname)
    with pytest.raises(UnsafeTargetError, match="never replaced"):
        clone_database(CloneRequest(source, pg_server.with_database(req.target.dbname),
                                    EMAIL_FAKED, TEST_KEY, jobs=1, replace=True,
                                    marker={"environment": "golden-guard"}))
    with pytest.raises(UnsafeTargetError, match="never replaced"):
        branch_database(pg_server, req.target.dbname, req.target.dbname, {}, replace=True)
    after = golden_info(pg_server, req.target.dbname)
    assert before is not None and after is not None and after.marker == before.marker
    drop_owned_database(pg_server, "envforge_guard_env")
    cleanup_golden(pg_server, req.target.dbname)


@pytest.mark.slow  # 10-15 s of database copies on a loaded machine: make test-fast skips it
def test_a_golden_swapped_between_check_and_copy_is_checked_again(
        pg_server: ServerAddress, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh with other rules swaps the golden right after this branch checked it: the
    copy (under the shared swap lock) sees another identity and the branch checks again, so
    it never copies a golden its own rules did not make."""
    import envforge.db.branch as branch_module

    source = make_source(pg_server, "ident_race", "race", n=30)
    mine = request(source, pg_server, "race", EMAIL_KEPT)
    theirs = request(source, pg_server, "race", EMAIL_FAKED)
    branch_from_golden(mine, "envforge_race_first", {}, HOUR, replace=True)
    real_ensure = branch_module.ensure_golden
    swapped: list[bool] = []

    def ensure_then_swap(req: CloneRequest, *args: object, **kwargs: object) -> object:
        result = real_ensure(req, *args, **kwargs)  # type: ignore[arg-type]
        if not swapped:
            swapped.append(True)
            build_golden(theirs)  # another template's refresh, other rules
        return result

    monkeypatch.setattr(branch_module, "ensure_golden", ensure_then_swap)
    result = branch_from_golden(mine, "envforge_race", {}, HOUR, replace=True)
    assert swapped and result.built is not None  # rebuilt with this request's rules
    assert emails(pg_server.with_database("envforge_race")) == emails(source)  # passthrough
    for name in ("envforge_race_first", "envforge_race"):
        drop_owned_database(pg_server, name)
    cleanup_golden(pg_server, mine.target.dbname)
