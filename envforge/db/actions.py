"""The db:* actions: clone, seed, snapshot, restore, drop an environment's database.

Connection details come from DatabaseServer blocks (or PG* variables), the anonymisation key
from an AnonymisationKey block (or ENVFORGE_ANONYMISATION_KEY); inputs name blocks, never
secrets. Every action that creates a database drops it again if it fails, and its rollback
drops it after a later step failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.connections import ConnectionSource
from envforge.core.config import load_settings
from envforge.db.branch import branch_from_golden, golden_database_name, parse_age
from envforge.db.clone import CloneRequest, clone_database, inspect_source
from envforge.db.connection import ServerAddress
from envforge.db.rules import Rules, load_rules
from envforge.db.safety import drop_owned_database, target_database_name
from envforge.db.seed import SeedRequest, seed_database
from envforge.db.snapshot import LocalDirectoryStore, restore_snapshot, take_snapshot
from envforge.errors import PersonalDataError, RulesError
from envforge.services import require_connections


def load_server(block_name: str | None, connections: ConnectionSource) -> Any:
    """A DatabaseServer block by name, or one from PG* variables when no name is given."""
    return connections.database_server(block_name)


def load_key(block_name: str | None, connections: ConnectionSource) -> bytes:
    """The anonymisation key from an AnonymisationKey block, or ENVFORGE_ANONYMISATION_KEY."""
    return connections.anonymisation_key(block_name)


def _connections(ctx: ActionContext) -> ConnectionSource:
    """The connections the run was handed (the composition root's)."""
    return require_connections(ctx.services, f"step {ctx.step_id!r}")


def snapshot_store(directory: str | None) -> LocalDirectoryStore:
    return LocalDirectoryStore(Path(directory) if directory else
                               load_settings().home / "snapshots")


class _TargetInput(ActionInput):
    environment: str = Field(description="Environment name; the database is envforge_<name>.")
    database: str | None = Field(None, description="Explicit target database name instead.")
    targetBlock: str | None = Field(None, description="DatabaseServer block; default: PG*.")

    def target(self, connections: ConnectionSource) -> ServerAddress:
        name = self.database or target_database_name(self.environment)
        return load_server(self.targetBlock, connections).address(  # type: ignore[no-any-return]
            name)


class DatabaseOutput(ActionOutput):
    database: str
    host: str
    port: int
    rows: int = 0
    seconds: float = 0.0


def _output(target: ServerAddress, rows: int = 0, seconds: float = 0.0) -> DatabaseOutput:
    return DatabaseOutput(database=target.dbname, host=target.host, port=target.port, rows=rows,
                          seconds=round(seconds, 3))


class _DropsTarget:
    def rollback(self, ctx: ActionContext, params: Any, output: Any) -> None:
        target = params.target(_connections(ctx))
        # Only what this run recorded creating: a database another run made under that name
        # (or a foreign one) is left alone.
        if drop_owned_database(target, output.database, run_id=ctx.run_id):
            ctx.logger.info("rolled back: dropped database %s", target.label)


class CloneInput(_TargetInput):
    sourceBlock: str | None = Field(None, description="DatabaseServer block of the source.")
    sourceDatabase: str = Field(description="Database to clone (only ever read).")
    rules: str | None = Field(None, description="Rules file, relative to the template.")
    keyBlock: str | None = Field(None, description="AnonymisationKey block; default: "
                                                   "ENVFORGE_ANONYMISATION_KEY.")
    jobs: int = Field(2, ge=1, le=16, description="Tables copied in parallel.")
    replace: bool = Field(False, description="Replace an envforge database of the same name.")
    strategy: Literal["clone", "branch"] = Field(
        "clone", description="clone: anonymise into the environment's database; branch: "
        "anonymise once into a golden database on the target server and give the environment "
        "a file copy of it (CREATE DATABASE ... TEMPLATE, about a second).")
    golden: str | None = Field(None, description="branch: golden name (default: "
                               "sourceDatabase); its database is envforge_golden_<name>.")
    goldenMaxAge: str = Field("20h", description="branch: a golden older than this (90m, 20h, "
                                                 "7d) is rebuilt before branching, so the "
                                                 "nightly refresh rebuilds it once.")
    goldenKeep: int = Field(1, ge=0, le=10, description="branch: previous goldens kept.")

    @field_validator("goldenMaxAge")
    @classmethod
    def _age(cls, value: str) -> str:
        parse_age(value)
        return value


class CloneAction(_DropsTarget, Action[CloneInput, DatabaseOutput]):
    id = "db:clone"
    description = ("Clone a PostgreSQL database with anonymisation rules (strict: uncovered "
                   "personal data stops the run), optionally subset, into a new database.")
    input_model = CloneInput
    output_model = DatabaseOutput
    supports_dry_run = True
    examples = [{"id": "database", "name": "Anonymised copy of production",
                 "action": "db:clone",
                 "input": {"environment": "${{ parameters.name }}", "sourceBlock": "production",
                           "sourceDatabase": "shop", "rules": "anonymisation.yaml",
                           "keyBlock": "anonymisation-key"}},
                {"id": "database", "name": "Branch of the nightly anonymised golden copy",
                 "action": "db:clone",
                 "input": {"environment": "${{ parameters.name }}", "sourceBlock": "production",
                           "sourceDatabase": "shop", "rules": "anonymisation.yaml",
                           "keyBlock": "anonymisation-key", "strategy": "branch",
                           "goldenMaxAge": "20h"}}]

    def _rules(self, ctx: ActionContext, params: CloneInput) -> Rules:
        return load_rules(ctx.template_dir / params.rules if params.rules else None)

    def run(self, ctx: ActionContext, params: CloneInput) -> DatabaseOutput:
        target = params.target(_connections(ctx))
        source = load_server(params.sourceBlock, _connections(ctx)).address(params.sourceDatabase)
        request = CloneRequest(
            source=source, target=target, rules=self._rules(ctx, params),
            key=load_key(params.keyBlock, _connections(ctx)), jobs=params.jobs,
            replace=params.replace,
            marker={"environment": params.environment, "run_id": ctx.run_id},
            rules_source=params.rules or "rules")
        if params.strategy == "clone":
            report = clone_database(request, ctx.logger)
            return _output(target, report.rows, report.seconds)
        golden = target.with_database(golden_database_name(params.golden
                                                           or params.sourceDatabase))
        result = branch_from_golden(
            CloneRequest(source=source, target=golden, rules=request.rules, key=request.key,
                         jobs=params.jobs, marker={"run_id": ctx.run_id},
                         rules_source=request.rules_source),
            target.dbname, {"environment": params.environment, "run_id": ctx.run_id},
            parse_age(params.goldenMaxAge), keep=params.goldenKeep, replace=params.replace,
            logger=ctx.logger)
        built = result.built
        return _output(target, built.rows if built else 0,
                       result.seconds + (built.seconds if built else 0.0))

    def dry_run(self, ctx: ActionContext, params: CloneInput) -> DatabaseOutput:
        """Checks rules and strict classification against the source; creates nothing."""
        rules = self._rules(ctx, params)
        source = load_server(params.sourceBlock, _connections(ctx)).address(params.sourceDatabase)
        _, _, decisions = inspect_source(source, rules, params.rules or "rules")
        stops = [f"{d.table}.{d.column} looks like {d.detail}" for d in decisions if d.stops]
        if stops and rules.strict:
            raise PersonalDataError(stops)
        return _output(params.target(_connections(ctx)))

    def check(self, params: CloneInput, template_dir: Path) -> list[str]:
        if not params.rules:
            return []
        try:
            rules = load_rules(template_dir / params.rules)
        except RulesError as e:
            return [str(e)]
        return [str(RulesError(params.rules, rules.problems))] if rules.problems else []


class SeedInput(_TargetInput):
    schema_: str | None = Field(None, alias="schema", description="SQL schema file (template).")
    schemaBlock: str | None = Field(None, description="Or: take the schema from this server...")
    schemaDatabase: str | None = Field(None, description="... and database (schema only).")
    fixtures: list[str] = Field(default_factory=list, description="SQL, CSV or YAML files.")
    generate: dict[str, int] = Field(default_factory=dict, description="table -> synthetic rows")
    seed: int = Field(0, description="Faker/random seed: same seed, same rows.")
    replace: bool = False


class SeedAction(_DropsTarget, Action[SeedInput, DatabaseOutput]):
    id = "db:seed"
    description = "Create the environment's database from a schema, fixtures and Faker rows."
    input_model = SeedInput
    output_model = DatabaseOutput
    examples = [{"id": "database", "name": "Seeded database", "action": "db:seed",
                 "input": {"environment": "${{ parameters.name }}", "schema": "db/schema.sql",
                           "fixtures": ["db/countries.csv"], "generate": {"public.users": 100}}}]

    def run(self, ctx: ActionContext, params: SeedInput) -> DatabaseOutput:
        target = params.target(_connections(ctx))
        schema_source = (load_server(params.schemaBlock, _connections(ctx)).address(
            params.schemaDatabase) if params.schemaDatabase else None)
        report = seed_database(SeedRequest(
            target=target, schema_sql=ctx.template_dir / params.schema_ if params.schema_
            else None, schema_source=schema_source,
            fixtures=[ctx.template_dir / f for f in params.fixtures], generate=params.generate,
            seed=params.seed, replace=params.replace,
            marker={"environment": params.environment, "run_id": ctx.run_id}), ctx.logger)
        return _output(target, report.rows, report.seconds)


class SnapshotInput(_TargetInput):
    name: str = Field(description="Snapshot name (letters, digits, '.', '_', '-').")
    store: str | None = Field(None, description="Snapshot directory; default "
                                                "$ENVFORGE_HOME/snapshots.")


class SnapshotOutput(ActionOutput):
    name: str
    sizeBytes: int


class SnapshotAction(Action[SnapshotInput, SnapshotOutput]):
    id = "db:snapshot"
    description = "Save an envforge-created (anonymised) database as a named snapshot."
    input_model = SnapshotInput
    output_model = SnapshotOutput
    examples = [{"id": "snapshot", "name": "Keep the anonymised clone", "action": "db:snapshot",
                 "input": {"environment": "nightly", "name": "shop-nightly"}}]

    def run(self, ctx: ActionContext, params: SnapshotInput) -> SnapshotOutput:
        target = params.target(_connections(ctx))
        info = take_snapshot(target.with_database("postgres"), target.dbname,
                             snapshot_store(params.store), params.name)
        ctx.logger.info("snapshot %s of %s: %.1f MB", info.name, target.label,
                        info.size_bytes / 1e6)
        return SnapshotOutput(name=info.name, sizeBytes=info.size_bytes)

    def rollback(self, ctx: ActionContext, params: SnapshotInput, output: SnapshotOutput) -> None:
        snapshot_store(params.store).delete(output.name)


class RestoreInput(_TargetInput):
    snapshot: str = Field(description="Name of a snapshot taken by db:snapshot.")
    store: str | None = None
    jobs: int = Field(2, ge=1, le=16)
    replace: bool = False


class RestoreAction(_DropsTarget, Action[RestoreInput, DatabaseOutput]):
    id = "db:restore"
    description = "Create the environment's database from an anonymised snapshot."
    input_model = RestoreInput
    output_model = DatabaseOutput
    examples = [{"id": "database", "name": "Database from the nightly snapshot",
                 "action": "db:restore",
                 "input": {"environment": "${{ parameters.name }}", "snapshot": "shop-nightly"}}]

    def run(self, ctx: ActionContext, params: RestoreInput) -> DatabaseOutput:
        target = params.target(_connections(ctx))
        seconds = restore_snapshot(snapshot_store(params.store), params.snapshot, target,
                                   {"environment": params.environment, "run_id": ctx.run_id},
                                   replace=params.replace, jobs=params.jobs, logger=ctx.logger)
        return _output(target, seconds=seconds)


class DropOutput(ActionOutput):
    database: str
    dropped: bool


class DropAction(Action[_TargetInput, DropOutput]):
    id = "db:drop"
    description = "Drop the environment's database, only if envforge created it."
    input_model = _TargetInput
    output_model = DropOutput
    examples = [{"id": "drop-db", "name": "Drop the database", "action": "db:drop",
                 "input": {"environment": "${{ parameters.name }}"}}]

    def run(self, ctx: ActionContext, params: _TargetInput) -> DropOutput:
        target = params.target(_connections(ctx))
        dropped = drop_owned_database(target, target.dbname)
        ctx.logger.info("%s %s", "dropped" if dropped else "no database", target.label)
        return DropOutput(database=target.dbname, dropped=dropped)


ACTIONS: list[type[Action[Any, Any]]] = [CloneAction, SeedAction, SnapshotAction, RestoreAction,
                                         DropAction]
