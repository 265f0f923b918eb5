"""``envforge db plan|clone|seed|snapshot|restore|drop``: databases from the command line.

Servers are given as libpq DSNs/URLs (``--source``, ``--server``) or as DatabaseServer block
names (``--source-block``, ``--server-block``); put passwords in PGPASSWORD or ~/.pgpass rather
than in a DSN on the command line. The anonymisation key comes from an AnonymisationKey block
(``--key-block``) or ENVFORGE_ANONYMISATION_KEY.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envforge.db.connection import ServerAddress

# Only argparse at import: `envforge db --help` and every subcommand load just what they use
# (each handler imports its own modules; the database engine, Faker and Prefect's blocks cost
# about a second together, as long as a whole Pagila-sized dump and restore).
log = logging.getLogger("envforge.db")


def add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="clone, seed, snapshot and drop databases")
    # Connections, workers and temporary files are closed when a handler returns: the
    # process then ends without the interpreter's teardown (envforge.cli._exit_at_once).
    parser.set_defaults(exit_at_once=True)
    sub = parser.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("plan", help="decision for every column, with before/after samples")
    _source_args(p)
    p.add_argument("--rules", type=Path, help="anonymisation rules (YAML)")
    p.add_argument("--key-block", help="AnonymisationKey block for the samples (default: "
                                       "ENVFORGE_ANONYMISATION_KEY, else a throw-away key)")
    p.add_argument("--no-samples", action="store_true", help="do not print sampled values")
    p.set_defaults(handler=plan_command)

    p = sub.add_parser("clone", help="anonymised clone into a new envforge database")
    _source_args(p)
    _target_args(p)
    p.add_argument("--rules", type=Path, help="anonymisation rules (YAML)")
    p.add_argument("--key-block", help="AnonymisationKey block (default: env variable)")
    p.add_argument("--jobs", type=int, default=2, help="tables copied in parallel")
    p.add_argument("--replace", action="store_true", help="replace an envforge database")
    p.set_defaults(handler=clone_command)

    p = sub.add_parser("branch", help="branch an environment's database from a golden "
                                      "anonymised copy (built from the source when missing "
                                      "or older than --max-age)")
    _source_args(p)
    _target_args(p)
    p.add_argument("--rules", type=Path, help="anonymisation rules (YAML)")
    p.add_argument("--key-block", help="AnonymisationKey block (default: env variable)")
    p.add_argument("--golden", help="golden name (default: the source database's name)")
    p.add_argument("--max-age", default="20h", help="rebuild an older golden (90m, 20h, 7d)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the golden now")
    p.add_argument("--keep", type=int, default=1, help="previous goldens kept")
    p.add_argument("--jobs", type=int, default=2, help="tables copied in parallel")
    p.add_argument("--replace", action="store_true", help="replace an envforge database")
    p.set_defaults(handler=branch_command)

    p = sub.add_parser("golden-rollback", help="put a golden's previous copy back in its "
                                               "place (the current one is kept as previous)")
    p.add_argument("--server", help="server DSN of the goldens (default: PG* variables)")
    p.add_argument("--server-block", help="DatabaseServer block of that server")
    p.add_argument("--golden", required=True, help="golden name (as given to branch)")
    p.set_defaults(handler=golden_rollback_command)

    p = sub.add_parser("seed", help="schema, fixtures and synthetic rows")
    _target_args(p)
    p.add_argument("--schema", type=Path, help="SQL schema file")
    p.add_argument("--fixture", type=Path, action="append", default=[],
                   help="SQL, CSV (<schema>.<table>.csv) or YAML fixture; repeatable")
    p.add_argument("--generate", action="append", default=[], metavar="TABLE=ROWS",
                   help="synthetic rows for a table; repeatable")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same rows)")
    p.add_argument("--replace", action="store_true")
    p.set_defaults(handler=seed_command)

    p = sub.add_parser("snapshot", help="save an envforge database as a named snapshot")
    _target_args(p)
    p.add_argument("--name", required=True)
    p.add_argument("--store", help="snapshot directory (default $ENVFORGE_HOME/snapshots)")
    p.set_defaults(handler=snapshot_command)

    p = sub.add_parser("restore", help="create an environment's database from a snapshot")
    _target_args(p)
    p.add_argument("--snapshot", required=True)
    p.add_argument("--store")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--replace", action="store_true")
    p.set_defaults(handler=restore_command)

    p = sub.add_parser("drop", help="drop an environment's database (only envforge's own)")
    _target_args(p)
    p.set_defaults(handler=drop_command)


def _source_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--source", help="source DSN or URL (only ever read)")
    group.add_argument("--source-block", help="DatabaseServer block of the source")
    p.add_argument("--source-database", help="database on the source block's server")


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", help="target server DSN (default: PG* variables)")
    p.add_argument("--server-block", help="DatabaseServer block of the target server")
    p.add_argument("--environment", "-e", required=True, help="environment name")
    p.add_argument("--database", help="explicit target database name (default envforge_<env>)")


def _source(args: argparse.Namespace) -> ServerAddress:
    from envforge.db.connection import ServerAddress
    from envforge.errors import ConfigurationError

    if args.source:
        return ServerAddress.from_dsn(args.source)
    if not args.source_database:
        raise ConfigurationError("--source-block needs --source-database")
    return _load_server(args.source_block).address(args.source_database)  # type: ignore[no-any-return]


def _target(args: argparse.Namespace) -> ServerAddress:
    from envforge.db.safety import target_database_name

    return _server(args).with_database(args.database or target_database_name(args.environment))


def _server(args: argparse.Namespace) -> ServerAddress:
    from envforge.db.connection import ServerAddress

    if args.server:
        return ServerAddress.from_dsn(args.server)
    return _load_server(args.server_block).address()  # type: ignore[no-any-return]


def _load_server(block: str | None) -> Any:
    from envforge.cli.services import cli_services
    from envforge.db.actions import load_server

    return load_server(block, cli_services().connections)


_MIN_KEY_BYTES = 16  # as the AnonymisationKey block requires


def _key(args: argparse.Namespace) -> bytes:
    """The anonymisation key: the settings' ENVFORGE_ANONYMISATION_KEY when no block is named
    (the CLI is a composition root; loading the block machinery costs Prefect's import),
    otherwise the AnonymisationKey block or the Vault reference, through the blocks."""
    from envforge.errors import ConfigurationError
    from envforge.settings import load_settings

    secret = load_settings().db.anonymisation_key
    if args.key_block is None and secret is not None:
        raw = secret.get_secret_value().encode("utf-8")
        if len(raw) < _MIN_KEY_BYTES:
            raise ConfigurationError(f"the anonymisation key is shorter than {_MIN_KEY_BYTES} "
                                     "bytes; use a long random value (e.g. openssl rand -hex 32)")
        return raw
    from envforge.cli.services import cli_services
    from envforge.db.actions import load_key

    return load_key(args.key_block, cli_services().connections)


def _rules(args: argparse.Namespace) -> Any:
    from envforge.db.rules import load_rules

    return load_rules(args.rules)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Progress lines to whatever sys.stderr is when a record is emitted."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _progress_to_stderr() -> None:
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def plan_command(args: argparse.Namespace) -> int:
    import secrets

    from envforge.db.plan import make_plan, render_plan
    from envforge.errors import ConfigurationError

    rules = _rules(args)
    try:
        key = _key(args)
    except ConfigurationError:
        key = secrets.token_bytes(32)  # samples only: fakes differ from a real clone's
        print("note: no anonymisation key configured; samples use a throw-away key",
              file=sys.stderr)
    plan = make_plan(_source(args), rules, key, str(args.rules or "rules"))
    print(render_plan(plan, show_samples=not args.no_samples))
    return 1 if plan.stops and rules.strict else 0


def _prompt_threads(handler: Callable[[argparse.Namespace], int]
                    ) -> Callable[[argparse.Namespace], int]:
    """Run ``handler`` handing the GIL over every 0.5 ms instead of 5 ms: its helper threads
    (CREATE DATABASE, the schema dump, the source's identity) each wait on a server many times
    while the main thread imports and classifies, and each wait would otherwise end with up to
    5 ms more for the GIL. Set back afterwards (tests call main() in their own process)."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        previous = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        try:
            return handler(args)
        finally:
            sys.setswitchinterval(previous)

    return run


@_prompt_threads
def clone_command(args: argparse.Namespace) -> int:
    with _sigterm_unwinds():
        return _clone(args)


def _clone(args: argparse.Namespace) -> int:
    early = _early_schema_dump(args)
    try:
        from envforge.db.clone_start import CloneStart

        _progress_to_stderr()
        target, source = _target(args), _source(args)
    except BaseException:
        if early is not None:
            early.close()
        raise
    marker = {"environment": args.environment}
    # The snapshot, the schema dump and CREATE DATABASE start first; the clone machinery
    # (rules, classifier, transformers: most of the command's imports) loads while they run.
    with CloneStart(source, target, marker, replace=args.replace, early=early) as start:
        from envforge.db.clone import CloneRequest, clone_database

        report = clone_database(CloneRequest(
            source=source, target=target, rules=_rules(args), key=_key(args),
            jobs=args.jobs, replace=args.replace, marker=marker,
            rules_source=str(args.rules or "rules")), log, start)
    print(f"{target.label}: {report.rows:,} rows in {report.seconds:.1f} s")
    return 0


def _sigterm_unwinds() -> contextlib.AbstractContextManager[None]:
    """SIGTERM raises Terminated from the command's first line on, so what it began before
    the clone's own handler is set (the early snapshot's psql child, the schema dump's
    temporary folder) is closed on the way out rather than left behind by the default
    action."""
    from envforge.core.signals import sigterm_raises  # standard library only
    from envforge.errors import Terminated  # loaded with the CLI already

    return sigterm_raises(lambda: Terminated("terminated (SIGTERM) while cloning"))


def _early_schema_dump(args: argparse.Namespace) -> Any:
    """For a ``--source`` DSN: its snapshot and schema dump begun before anything else is
    imported (envforge.db.early_dump; stdlib only), or None."""
    if not args.source:
        return None
    from envforge.db.early_dump import EarlySchemaDump

    return EarlySchemaDump.start(args.source)


@_prompt_threads
def branch_command(args: argparse.Namespace) -> int:
    from envforge.db.branch import (
        SourceFactsReader,
        branch_from_golden,
        golden_database_name,
        parse_age,
    )

    _progress_to_stderr()
    target, source = _target(args), _source(args)
    facts = SourceFactsReader(source)  # the source's identity, read while the rules load
    from envforge.db.request import CloneRequest
    try:
        max_age = parse_age(args.max_age)
    except ValueError as e:
        from envforge.errors import ConfigurationError

        raise ConfigurationError(f"--max-age: {e}") from None
    golden = target.with_database(golden_database_name(args.golden or source.dbname))
    result = branch_from_golden(
        CloneRequest(source=source, target=golden, rules=_rules(args), key=_key(args),
                     jobs=args.jobs, rules_source=str(args.rules or "rules")),
        target.dbname, {"environment": args.environment},
        max_age, keep=args.keep, replace=args.replace, rebuild=args.rebuild, logger=log,
        source_facts=facts)
    built = result.built
    print(f"{target.label}: branched from {result.golden.database} in {result.seconds:.2f} s"
          + (f" (golden rebuilt: {built.rows:,} rows in {built.seconds:.1f} s)" if built else ""))
    return 0


def golden_rollback_command(args: argparse.Namespace) -> int:
    from envforge.db.branch import golden_database_name, rollback_golden

    _progress_to_stderr()
    server = _server(args)
    golden = golden_database_name(args.golden)
    restored = rollback_golden(server, golden, log)
    print(f"{golden}: rolled back to the previous copy {restored}")
    return 0


def seed_command(args: argparse.Namespace) -> int:
    from envforge.db.seed import SeedRequest, seed_database
    from envforge.errors import RulesError

    _progress_to_stderr()
    generate: dict[str, int] = {}
    for item in args.generate:
        table, _, count = item.partition("=")
        if not count.isdigit():
            raise RulesError("--generate", [f"{item!r}: expected TABLE=ROWS"])
        generate[table] = int(count)
    target = _target(args)
    report = seed_database(SeedRequest(target=target, schema_sql=args.schema,
                                       fixtures=args.fixture, generate=generate, seed=args.seed,
                                       replace=args.replace,
                                       marker={"environment": args.environment}), log)
    print(f"{target.label}: {report.rows:,} rows in {report.seconds:.1f} s")
    return 0


def snapshot_command(args: argparse.Namespace) -> int:
    from envforge.db.actions import snapshot_store
    from envforge.db.snapshot import take_snapshot

    target = _target(args)
    info = take_snapshot(target.with_database("postgres"), target.dbname,
                         snapshot_store(args.store), args.name)
    print(f"snapshot {info.name}: {info.size_bytes / 1e6:.1f} MB from {target.label}")
    return 0


def restore_command(args: argparse.Namespace) -> int:
    from envforge.db.actions import snapshot_store
    from envforge.db.snapshot import restore_snapshot

    _progress_to_stderr()
    target = _target(args)
    seconds = restore_snapshot(snapshot_store(args.store), args.snapshot, target,
                               {"environment": args.environment}, replace=args.replace,
                               jobs=args.jobs, logger=log)
    print(f"{target.label}: restored {args.snapshot} in {seconds:.1f} s")
    return 0


def drop_command(args: argparse.Namespace) -> int:
    from envforge.db.safety import drop_owned_database

    target = _target(args)
    dropped = drop_owned_database(target, target.dbname)
    print(f"{'dropped' if dropped else 'no such database'}: {target.label}")
    return 0
