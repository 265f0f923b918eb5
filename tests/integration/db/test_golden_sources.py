"""A hostile re-check of golden identity on servers and names of our own making (issue 26):
two servers made from one data directory (one system identifier) never share a golden's
rows, a golden made by other anonymisation code is rebuilt, and names reserved for goldens
are neither taken by an environment nor taken from one."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

import envforge.db.branch as branch_module
from envforge.db.branch import (
    branch_from_golden,
    golden_database_name,
    golden_info,
    previous_goldens,
    staging_database_name,
)
from envforge.db.clone import CloneRequest, clone_database
from envforge.db.connection import ServerAddress
from envforge.db.safety import drop_owned_database
from envforge.errors import UnsafeTargetError

from .conftest import SCRIPT, TEST_KEY, _free_port, database_exists
from .test_golden_identity import EMAIL_FAKED, EMAIL_KEPT, cleanup_golden, emails, make_source

pytestmark = pytest.mark.postgres
HOUR = timedelta(hours=1)


def _start(workdir: str) -> ServerAddress:
    port = _free_port()
    started = subprocess.run(["bash", str(SCRIPT), "start", workdir, str(port)],
                             capture_output=True, text=True, check=False)
    if started.returncode != 0:
        pytest.fail(f"could not start PostgreSQL in {workdir}: {started.stderr}")
    return ServerAddress(host="127.0.0.1", port=port, user="postgres", dbname="postgres")


@pytest.fixture(scope="module")
def twin_servers() -> Iterator[tuple[ServerAddress, ServerAddress]]:
    """Two running servers from one data directory (as a base backup or a copied volume
    makes them): the same system identifier, different rows."""
    first, second = (tempfile.mkdtemp(prefix="envforge-pg-twin-") for _ in range(2))
    try:
        _start(first)
        subprocess.run(["bash", str(SCRIPT), "stop", first], check=True)
        subprocess.run(["cp", "-a", f"{first}/data", f"{second}/data"], check=True)
        subprocess.run(["chown", "-R", "--reference", f"{first}/data", second], check=False)
        yield _start(first), _start(second)
    finally:
        for workdir in (first, second):
            subprocess.run(["bash", str(SCRIPT), "stop", workdir], check=False)
            shutil.rmtree(workdir, ignore_errors=True)


def system_identifier(server: ServerAddress) -> str:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT system_identifier::text FROM pg_control_system()"
                           ).fetchone()
    assert row is not None
    return str(row[0])


def golden_request(source: ServerAddress, envs: ServerAddress, golden: str,
                   rules: object = EMAIL_KEPT) -> CloneRequest:
    return CloneRequest(source, envs.with_database(golden_database_name(golden)),
                        rules, TEST_KEY, jobs=1)  # type: ignore[arg-type]


def test_servers_from_one_data_directory_never_share_a_golden(
        twin_servers: tuple[ServerAddress, ServerAddress]) -> None:
    here, there = twin_servers
    assert system_identifier(here) == system_identifier(there)
    mine = make_source(here, "twin_db", "here", n=60)
    theirs = make_source(there, "twin_db", "there", n=80)
    assert branch_from_golden(golden_request(mine, here, "twin-db"), "envforge_twin_mine",
                              {}, HOUR, replace=True).built is not None
    assert emails(here.with_database("envforge_twin_mine")) == emails(mine)
    # the other server's database of that name, asking for the same golden: its own rows
    other = branch_from_golden(golden_request(theirs, here, "twin-db"), "envforge_twin_theirs",
                               {}, HOUR, replace=True)
    assert other.built is not None
    assert emails(here.with_database("envforge_twin_theirs")) == emails(theirs)
    # and back: rebuilt again from the asking source, never the other's rows
    again = branch_from_golden(golden_request(mine, here, "twin-db"), "envforge_twin_mine",
                               {}, HOUR, replace=True)
    assert again.built is not None
    assert emails(here.with_database("envforge_twin_mine")) == emails(mine)
    for name in ("envforge_twin_mine", "envforge_twin_theirs"):
        drop_owned_database(here, name)
    cleanup_golden(here, golden_database_name("twin-db"))


def test_a_golden_made_by_other_anonymisation_code_is_rebuilt(
        pg_server: ServerAddress, monkeypatch: pytest.MonkeyPatch) -> None:
    source = make_source(pg_server, "engine_src", "engine", n=40)
    req = golden_request(source, pg_server, "engine", EMAIL_FAKED)
    real_engine = branch_module.engine_digest
    monkeypatch.setattr(branch_module, "engine_digest", lambda: "0" * 64)  # an older envforge
    assert branch_from_golden(req, "envforge_engine_env", {}, HOUR,
                              replace=True).built is not None
    info = golden_info(pg_server, req.target.dbname)
    assert info is not None and info.identity is not None
    assert info.identity.engine == "0" * 64
    monkeypatch.setattr(branch_module, "engine_digest", real_engine)  # upgraded
    upgraded = branch_from_golden(req, "envforge_engine_env", {}, HOUR, replace=True)
    assert upgraded.built is not None  # fresh by age, yet rebuilt
    assert upgraded.golden.identity is not None
    assert upgraded.golden.identity.engine == real_engine()
    assert branch_from_golden(req, "envforge_engine_env", {}, HOUR,
                              replace=True).built is None  # and then branched as it is
    drop_owned_database(pg_server, "envforge_engine_env")
    cleanup_golden(pg_server, req.target.dbname)


@pytest.mark.parametrize("name", ["envforge_golden_squat", "envforge_gprev_1_squat"])
def test_an_environment_cannot_take_a_name_reserved_for_goldens(
        pg_server: ServerAddress, name: str) -> None:
    source = make_source(pg_server, "reserved_src", "reserved", n=10)
    with pytest.raises(UnsafeTargetError, match="reserved for envforge's golden copies"):
        clone_database(CloneRequest(source, pg_server.with_database(name), EMAIL_FAKED,
                                    TEST_KEY, jobs=1, marker={"environment": "squat"}))
    assert not database_exists(pg_server, name)


def test_a_rebuild_never_replaces_an_environment_database_on_its_staging_name(
        pg_server: ServerAddress) -> None:
    """An environment database that sits on a golden's staging name (made by hand, or by an
    envforge before names were reserved): the rebuild refuses to replace it, and the
    golden is left as it was."""
    source = make_source(pg_server, "stage_src", "stage", n=20)
    req = golden_request(source, pg_server, "stage-guard")
    branch_from_golden(req, "envforge_stage_guard_env", {}, HOUR, replace=True)
    before = golden_info(pg_server, req.target.dbname)
    staging = staging_database_name(req.target.dbname)
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{staging}"')
        oid = conn.execute("SELECT oid FROM pg_database WHERE datname = %s",
                           (staging,)).fetchone()
        assert oid is not None
        conn.execute(f"COMMENT ON DATABASE \"{staging}\" IS 'envforge:owned "
                     f"{{\"environment\": \"someone\", \"oid\": {oid[0]}}}'")
    with pytest.raises(UnsafeTargetError, match="a golden never replaces it"):
        branch_from_golden(req, "envforge_stage_guard_env", {}, HOUR, replace=True,
                           rebuild=True)
    assert database_exists(pg_server, staging)  # the environment's database survives
    after = golden_info(pg_server, req.target.dbname)
    assert before is not None and after is not None and after.marker == before.marker
    assert previous_goldens(pg_server, req.target.dbname) == []
    drop_owned_database(pg_server, staging)
    drop_owned_database(pg_server, "envforge_stage_guard_env")
    cleanup_golden(pg_server, req.target.dbname)
