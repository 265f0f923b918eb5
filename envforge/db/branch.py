"""Anonymise once, branch per environment.

A *golden* database is an anonymised clone kept on the environments' database server
(``envforge_golden_<name>``). Its envforge marker records its identity (source server and
database, rules digest, key fingerprint, schema fingerprint, the source server's start, a
digest of the anonymisation code: :mod:`envforge.db.identity`). A branch compares that
identity with the one its own request produces: another source's golden is refused, a golden
made with other rules, another key, an older schema, from another instance of the source
server or by other anonymisation code is rebuilt, and only a golden that matches and is not
older than ``max_age`` is branched from.

A rebuild clones into a staging database (``envforge_gnext_<digest>``, a name no golden name
can produce) and then swaps it in: in one transaction the golden is renamed to
``envforge_gprev_<stamp>_<digest>`` and re-marked ``previous``, the staging copy renamed to
the golden's name and marked ``golden``. Retention and rollback choose databases by their
markers (the record of what envforge made, and for which golden), never by name.

Locks (session advisory locks in the maintenance database, so every envforge process on the
server sees them): *build* is held while a golden is rebuilt, so two refreshes build it once;
*swap* is held shared by each branch while it checks and copies the golden and exclusively for
the swap, so a branch copies exactly the golden it checked. A branch of a fresh golden never
takes the build lock and so never waits for a rebuild it does not need.

A *branch* is ``CREATE DATABASE env TEMPLATE golden STRATEGY FILE_COPY`` (PostgreSQL copies
the files). PostgreSQL refuses while another session is connected to the template; goldens
refuse connections, and :func:`envforge.db.safety.copy_template` handles a straggler.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from envforge.db.connection import ServerAddress, connected, read_only_snapshot
from envforge.db.identifiers import identifier
from envforge.db.identity import (
    GoldenIdentity,
    engine_digest,
    key_fingerprint,
    rules_digest,
    schema_fingerprint,
    source_instance,
    source_server_key,
)
from envforge.db.request import CloneReport, CloneRequest, log
from envforge.db.safety import (
    create_owned_database_on,
    drop_owned_database,
    owned_databases,
    ownership_marker,
    write_marker,
)
from envforge.errors import CopyFailedError, UnsafeTargetError

GOLDEN_PREFIX = "envforge_golden_"
STAGING_PREFIX = "envforge_gnext_"
PREVIOUS_PREFIX = "envforge_gprev_"
_NAME_MAX = 63  # NAMEDATALEN - 1
_DIGEST_LEN = 8


def golden_database_name(name: str) -> str:
    """``shop`` -> ``envforge_golden_shop`` (lower case, [a-z0-9_], at most 63 bytes). A name
    too long to fit is cut and given a digest of the whole name, so two long names that share
    their beginning never map to one golden."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise UnsafeTargetError(f"golden name {name!r} has no letters or digits; use e.g. "
                                "the source database's name")
    full = GOLDEN_PREFIX + slug
    if len(full) <= _NAME_MAX:
        return full
    return f"{full[:_NAME_MAX - _DIGEST_LEN - 1]}_{_digest(slug)}"


def staging_database_name(golden: str) -> str:
    """Where ``golden`` is rebuilt before the swap; no golden name can equal it."""
    return f"{STAGING_PREFIX}{_digest(golden, 16)}"


def _previous_database_name(golden: str) -> str:
    return f"{PREVIOUS_PREFIX}{datetime.now(UTC):%Y%m%d%H%M%S%f}_{_digest(golden)}"


def _digest(text: str, length: int = _DIGEST_LEN) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class GoldenInfo:
    database: str
    built: datetime
    marker: dict[str, Any]
    identity: GoldenIdentity | None  # None: built before identities were recorded

    def age(self) -> timedelta:
        return datetime.now(UTC) - self.built


@dataclass(frozen=True)
class BranchResult:
    golden: GoldenInfo
    built: CloneReport | None  # the rebuild's report when this call rebuilt the golden
    seconds: float  # the copy itself


class _GoldenChanged(Exception):
    """The golden was swapped for one of another identity between check and copy."""


def golden_info(server: ServerAddress, golden: str) -> GoldenInfo | None:
    """The golden's record, or None when it does not exist; refuses a database of that name
    that is not an envforge golden (a foreign one, a staging or a previous copy)."""
    with connected(server.with_database("postgres"), autocommit=True) as conn:
        return _golden_info(conn, golden)


def _golden_info(conn: psycopg.Connection[Any], golden: str) -> GoldenInfo | None:
    try:
        marker = ownership_marker(conn, golden)
    except LookupError:
        return None
    if marker is None:
        raise UnsafeTargetError(f"database {golden!r} exists but is not an envforge golden "
                                "copy; choose another golden name or remove it yourself")
    if marker.get("role") != "golden" or marker.get("golden", golden) != golden:
        raise UnsafeTargetError(
            f"database {golden!r} is an envforge {marker.get('role', 'database')} copy "
            f"(of {marker.get('golden', marker.get('environment', '?'))!r}), not a golden: "
            "branch from the golden itself")
    built = datetime.fromisoformat(str(marker.get("created", "1970-01-01T00:00:00+00:00")))
    return GoldenInfo(golden, built, marker, GoldenIdentity.from_marker(marker))


@dataclass(frozen=True)
class SourceFacts:
    """The source's part of a golden's identity, as read now."""

    source: str
    database: str
    schema: str
    instance: str


def read_source_facts(source: ServerAddress) -> SourceFacts:
    """The source's system identifier, schema fingerprint and start (only read)."""
    with read_only_snapshot(source) as snap:
        return SourceFacts(source_server_key(snap), source.dbname, schema_fingerprint(snap),
                           source_instance(snap))


class SourceFactsReader:
    """:func:`read_source_facts` on a thread, started before the rules are parsed and the
    environments' server is reached: psycopg waits without the GIL, so a branch's round trips
    to the two servers overlap each other and the caller's imports."""

    def __init__(self, source: ServerAddress) -> None:
        self.source = source
        self._facts: SourceFacts | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="envforge-source-facts",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._facts = read_source_facts(self.source)
        except BaseException as e:  # handed to the caller of result()
            self._error = e

    def result(self) -> SourceFacts:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._facts is not None
        return self._facts


def expected_identity(request: CloneRequest, facts: SourceFacts | None = None
                      ) -> GoldenIdentity:
    """The identity a golden built from ``request`` now would have (``facts``: the source's
    part, read already; else read now; the source is only read)."""
    facts = facts or read_source_facts(request.source)
    return GoldenIdentity(source=facts.source, database=facts.database,
                          rules=rules_digest(request.rules), key=key_fingerprint(request.key),
                          schema=facts.schema, instance=facts.instance, engine=engine_digest())


def _stale_reason(info: GoldenInfo | None, expected: GoldenIdentity,
                  max_age: timedelta | None, server: ServerAddress) -> str | None:
    """Why ``info`` cannot be branched for ``expected`` (None: it can). A golden of another
    source is refused outright: rebuilding it would take it from the environments of that
    source."""
    if info is None:
        return "missing"
    if info.identity is None:
        if info.marker.get("source_database", info.marker.get("source", "").rsplit("/", 1)[-1]) \
                != expected.database:
            raise _foreign_golden(info, server, expected)
        return "built before golden identities were recorded"
    if not info.identity.same_source(expected):
        raise _foreign_golden(info, server, expected)
    changed = info.identity.differences(expected)
    if changed:
        return f"{' and '.join(changed)} changed since it was built"
    if max_age is not None and info.age() > max_age:
        return f"older than {_age_text(max_age)} ({_age_text(info.age())})"
    return None


def _foreign_golden(info: GoldenInfo, server: ServerAddress,
                    expected: GoldenIdentity) -> UnsafeTargetError:
    return UnsafeTargetError(
        f"golden {info.database} on {server.host}:{server.port} was built from another source "
        f"({info.marker.get('source', '?')}), not from database {expected.database!r} of "
        f"this source server: give this source its own golden name (--golden, or golden: in "
        "the template)")


@contextmanager
def _advisory(conn: psycopg.Connection[Any], key: str, *, shared: bool = False
              ) -> Iterator[None]:
    lock, unlock = (("pg_advisory_lock_shared", "pg_advisory_unlock_shared") if shared
                    else ("pg_advisory_lock", "pg_advisory_unlock"))
    call = sql.SQL("SELECT {}(hashtextextended(%s, 0))")
    conn.execute(call.format(sql.Identifier(lock)), (key,))
    try:
        yield
    finally:
        conn.execute(call.format(sql.Identifier(unlock)), (key,))


@contextmanager
def golden_lock(server: ServerAddress, golden: str) -> Iterator[psycopg.Connection[Any]]:
    """Hold the *build* lock of ``golden`` while building and swapping it."""
    with connected(server.with_database("postgres"), autocommit=True) as conn, \
            _advisory(conn, f"envforge-golden-build:{golden}"):
        yield conn


def ensure_golden(request: CloneRequest, max_age: timedelta | None, *, keep: int = 1,
                  rebuild: bool = False, logger: Any = log,
                  admin: psycopg.Connection[Any] | None = None,
                  facts: SourceFacts | None = None) -> tuple[GoldenInfo, CloneReport | None]:
    """The golden named by ``request.target``, rebuilt when missing, of another identity
    (rules, key, source schema) or older than ``max_age`` (None: no age limit); refused when
    it belongs to another source. A fresh golden is returned without waiting for any lock.
    ``admin``: an autocommit session to the server's maintenance database to check on;
    ``facts``: the source's part of the identity, read already."""
    server, golden = request.target, request.target.dbname
    expected = expected_identity(request, facts)
    if not rebuild:
        info = _golden_info(admin, golden) if admin is not None else golden_info(server, golden)
        if _stale_reason(info, expected, max_age, server) is None:
            assert info is not None
            logger.info("golden %s is %s old and matches the source, rules and key: "
                        "branching from it", golden, _age_text(info.age()))
            return info, None
    with golden_lock(server, golden) as conn:
        info = _golden_info(conn, golden)
        reason = _stale_reason(info, expected, max_age, server)
        if reason is None and not rebuild:  # another process rebuilt it while we waited
            assert info is not None
            return info, None
        logger.info("rebuilding golden %s: %s", golden, "asked to" if rebuild else reason)
        report = _build_and_swap(request, conn, keep, logger)
        built = _golden_info(conn, golden)
        assert built is not None
        return built, report


def build_golden(request: CloneRequest, *, keep: int = 1, logger: Any = log) -> CloneReport:
    """Build the golden named by ``request.target`` anew (a scheduled refresh); refused when
    the existing golden belongs to another source."""
    expected = expected_identity(request)
    with golden_lock(request.target, request.target.dbname) as conn:
        _stale_reason(_golden_info(conn, request.target.dbname), expected, None,
                      request.target)
        return _build_and_swap(request, conn, keep, logger)


def _build_and_swap(request: CloneRequest, conn: psycopg.Connection[Any], keep: int,
                    logger: Any) -> CloneReport:
    golden = request.target.dbname
    if not golden.startswith(GOLDEN_PREFIX):
        raise UnsafeTargetError(f"golden database names start with {GOLDEN_PREFIX!r}; got "
                                f"{golden!r}")
    staging = staging_database_name(golden)
    recipe = {"rules": rules_digest(request.rules), "key": key_fingerprint(request.key),
              "engine": engine_digest()}
    from envforge.db.clone import clone_database  # the rebuild alone needs the clone code

    report = clone_database(replace(
        request, target=request.target.with_database(staging), replace=True,
        marker=dict(request.marker, role="staging", golden=golden, **recipe)), logger)
    try:
        marker = ownership_marker(conn, staging) or {}
        identity = GoldenIdentity(source=str(marker["source_id"]),
                                  database=str(marker["source_database"]),
                                  schema=str(marker["schema"]),
                                  instance=str(marker.get("source_instance", "")), **recipe)
        conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(
            identifier(staging)))
        _swap(conn, golden, staging, dict(marker, role="golden",
                                          identity=identity.as_marker()))
    except BaseException:
        drop_owned_database(request.target, staging)
        raise
    logger.info("golden %s rebuilt (%s rows in %.1f s) and swapped in", golden,
                f"{report.rows:,}", report.seconds)
    prune_goldens(request.target, golden, keep, logger)
    return report


_RENAME = sql.SQL("ALTER DATABASE {} RENAME TO {}")


def _swap(conn: psycopg.Connection[Any], golden: str, staging: str, marker: dict[str, Any],
          attempts: int = 5) -> None:
    """golden -> previous, staging -> golden, both re-marked, in one transaction under the
    exclusive swap lock: a branch sees the old golden or the new one, never none, and copies
    the one it checked. Sessions still connected to the old golden are ended."""
    with _advisory(conn, f"envforge-golden-swap:{golden}"):
        for attempt in range(1, attempts + 1):
            try:
                with conn.transaction():
                    old = _owned_marker(conn, golden)
                    if old is not None and (old.get("role") != "golden"
                                            or old.get("golden", golden) != golden):
                        raise UnsafeTargetError(
                            f"database {golden!r} is an envforge "
                            f"{old.get('role', 'environment')} database, not the golden: "
                            "it is never replaced by a golden copy; drop it yourself")
                    if old is not None:
                        previous = _previous_database_name(golden)
                        conn.execute(_RENAME.format(identifier(golden), identifier(previous)))
                        write_marker(conn, previous, dict(
                            old, role="previous", golden=golden,
                            retired=datetime.now(UTC).isoformat(timespec="microseconds")))
                    conn.execute(_RENAME.format(identifier(staging), identifier(golden)))
                    write_marker(conn, golden, marker)
                return
            except psycopg.errors.ObjectInUse as e:
                if attempt == attempts:
                    raise CopyFailedError(f"swapping golden {golden}: {str(e).strip()}; "
                                          "sessions kept connecting to it") from None
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = %s AND pid <> pg_backend_pid()", (golden,))
                time.sleep(0.1 * attempt)


def _owned_marker(conn: psycopg.Connection[Any], name: str) -> dict[str, Any] | None:
    try:
        return ownership_marker(conn, name)
    except LookupError:
        return None


def previous_goldens(server: ServerAddress, golden: str) -> list[str]:
    """The previous copies envforge recorded for ``golden``, newest first (by their markers;
    a database merely named like one is not among them)."""
    with connected(server.with_database("postgres"), autocommit=True) as conn:
        owned = owned_databases(conn)
    mine = [(str(m.get("retired") or m.get("created") or ""), name)
            for name, m in owned.items()
            if name != golden and m.get("golden") == golden
            and m.get("role") in ("previous", "golden")]  # "golden": renamed by older envforge
    return [name for _, name in sorted(mine, reverse=True)]


def prune_goldens(server: ServerAddress, golden: str, keep: int, logger: Any = log) -> list[str]:
    """Drop previous copies of ``golden`` beyond the ``keep`` newest (retention); returns
    those dropped. Only databases whose marker records them as this golden's previous copies
    are considered, so another golden or a foreign database is never touched."""
    dropped = []
    for name in previous_goldens(server, golden)[max(keep, 0):]:
        if drop_owned_database(server, name):
            dropped.append(name)
            logger.info("retention: dropped previous golden %s", name)
    return dropped


def rollback_golden(server: ServerAddress, golden: str, logger: Any = log) -> str:
    """Put the newest previous copy of ``golden`` back in its place (the current one becomes
    a previous copy); returns the name the restored copy had."""
    with golden_lock(server, golden) as conn:
        candidates = previous_goldens(server, golden)
        if not candidates:
            raise UnsafeTargetError(f"golden {golden} has no previous copy recorded on "
                                    f"{server.host}:{server.port}; nothing to roll back to")
        chosen = candidates[0]
        marker = ownership_marker(conn, chosen) or {}
        marker = {k: v for k, v in marker.items() if k != "retired"}
        _swap(conn, golden, chosen, dict(marker, role="golden"))
    logger.info("golden %s rolled back to %s", golden, chosen)
    return chosen


def branch_database(server: ServerAddress, golden: str, target: str, marker: dict[str, Any],
                    *, replace: bool = False, expected: GoldenIdentity | None = None,
                    logger: Any = log) -> float:
    """Create ``target`` as a file copy of the envforge golden ``golden``; returns seconds.
    With ``expected``, the golden must still have that identity when it is copied."""
    with connected(server.with_database("postgres"), autocommit=True) as conn:
        return branch_database_on(conn, server, golden, target, marker, replace=replace,
                                  expected=expected, logger=logger)


def branch_database_on(conn: psycopg.Connection[Any], server: ServerAddress, golden: str,
                       target: str, marker: dict[str, Any], *, replace: bool = False,
                       expected: GoldenIdentity | None = None, logger: Any = log) -> float:
    """:func:`branch_database` over ``conn`` (an autocommit session to the maintenance
    database): checking the golden and copying it costs no new session."""
    started = time.perf_counter()
    with _advisory(conn, f"envforge-golden-swap:{golden}", shared=True):
        info = _golden_info(conn, golden)
        if info is None:
            raise CopyFailedError(f"golden {golden!r} does not exist on {server.label}: build "
                                  "it first (db:clone with strategy: branch builds it when "
                                  "missing)")
        if expected is not None and info.identity != expected:
            raise _GoldenChanged(golden)
        create_owned_database_on(conn, server, target, dict(
            marker, strategy="branch", golden=golden,
            golden_built=info.built.isoformat(timespec="seconds"),
            **({"identity": info.identity.as_marker()} if info.identity else {})),
            replace=replace, template=golden)
    seconds = time.perf_counter() - started
    logger.info("branched %s from golden %s (built %s ago) in %.2f s", target, golden,
                _age_text(info.age()), seconds)
    return seconds


def branch_from_golden(request: CloneRequest, target: str, marker: dict[str, Any],
                       max_age: timedelta | None, *, keep: int = 1, replace: bool = False,
                       rebuild: bool = False, logger: Any = log,
                       source_facts: SourceFactsReader | None = None) -> BranchResult:
    """Branch ``target`` from the golden ``request.target`` names, rebuilding the golden
    first when it is missing, stale or ``rebuild`` is asked (see :func:`ensure_golden`). A
    golden swapped for one of another identity between the check and the copy is checked
    again (at most three times). ``source_facts``: the source's identity being read already
    (else it is read while the session to the environments' server opens)."""
    server = request.target
    if source_facts is None or source_facts.source != request.source:
        source_facts = SourceFactsReader(request.source)
    with connected(server.with_database("postgres"), autocommit=True) as admin:
        for attempt in range(3):
            facts = source_facts.result() if attempt == 0 else None  # later: read again
            info, built = ensure_golden(request, max_age, keep=keep, logger=logger,
                                        rebuild=rebuild and attempt == 0, admin=admin,
                                        facts=facts)
            try:
                seconds = branch_database_on(admin, server, info.database, target, marker,
                                             replace=replace, expected=info.identity,
                                             logger=logger)
            except _GoldenChanged:
                logger.info("golden %s changed while branching; checking it again",
                            info.database)
                continue
            return BranchResult(info, built, seconds)
    raise CopyFailedError(f"golden {request.target.dbname} kept changing while {target} was "
                          "branched from it (concurrent rebuilds with other rules?); try again")


def parse_age(text: str) -> timedelta:
    """``90m``, ``20h``, ``7d`` -> timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhd])\s*", text)
    if not match:
        raise ValueError(f"age {text!r} is not like 90m, 20h or 7d")
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})


def _age_text(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
