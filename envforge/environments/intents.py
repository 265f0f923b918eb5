"""Create intents: what an environment's create may make outside Git, recorded before it makes
anything, so a create killed before its GitOps commit can be cleaned up and its name reused.

A create makes its database (db:seed, db:clone, db:restore) and its Secrets (vault:secrets,
kubernetes:secret) before publish:gitops commits the environment; a kill -9 in between used
to leave them orphaned, and the database blocked the name (``already exists``). Now, before
the first step, ``$ENVFORGE_HOME/state/create-intents/<name>.json`` records the environment,
the run id that marks what the run makes (every envforge database carries it in its owner
comment; Secrets carry the environment's label), the servers it may touch and the process
doing it (pid + start time + boot id: see envforge.core.processes). The file is
written atomically (a hard link to a complete temporary file, which also refuses a second
writer) and removed when the run ends with nothing left behind.

An intent whose process is gone and whose environment has no record is a killed create:
``envforge env list`` shows it as incomplete, the next create of the name cleans up first
(dropping only databases marked with the killed run's id, deleting the environment's
Secrets) and then creates it, and ``envforge env destroy`` cleans it up. An intent whose
environment has a record is a create killed after its commit: it is just removed.

What only the running steps know (an image tag pushed, a repository a publisher creates on a
Git provider, the cluster a Secret goes to) is appended to the run's ledger
(envforge.capabilities.ledger, ``<name>.ledger`` beside the intent) before it is made; the
clean-up deletes what a ``made`` line names, by the identity the other side answered (the
image's digest, the provider's repository id), with the same rules as the step's own
rollback, and deletes Secrets on every cluster the template or the ledger names (never just
the default one). Something recorded as intended but never as made is reported, not deleted.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envforge.capabilities.ledger import ledger_path, outstanding, read_ledger
from envforge.core.processes import ProcessIdentity, current_process
from envforge.environments.intent_cleanup import (
    drop_databases_of_run,
    remove_made,
    remove_secrets,
)
from envforge.errors import EnvforgeError, EnvironmentExistsError, GitOpsError
from envforge.gitops.naming import check_environment_name
from envforge.gitops.record import utc_now
from envforge.services import Services
from envforge.templating.model import Template

#: Steps that make an environment's database (or, db:container, a scratch database for its
#: seed; db:role, its login role) on a database server before the commit.
DATABASE_ACTIONS = frozenset({"db:seed", "db:restore", "db:clone", "db:container", "db:role"})
#: Steps that deliver Secrets into the environment's namespace before the commit (db:container
#: its database's password, db:role its login).
SECRET_ACTIONS = frozenset({"vault:secrets", "kubernetes:secret", "db:container", "db:role"})

M = TypeVar("M", bound=BaseModel)


class CreateIntent(BaseModel):
    """What one create of one environment may leave behind if it is killed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    apiVersion: Literal["envforge.dev/v1alpha1"] = "envforge.dev/v1alpha1"
    kind: Literal["CreateIntent"] = "CreateIntent"
    name: str
    template: str
    owner: str | None = None
    runId: str
    namespace: str
    startedAt: datetime
    process: ProcessIdentity
    #: DatabaseServer blocks the template's data steps name (None: the PG* variables); an
    #: expression that only the run can render is recorded as None too (the default server)
    databaseServers: list[str | None] = Field(default_factory=list)
    secrets: bool = False
    #: KubernetesCluster blocks the template's Secret steps name (None: KUBECONFIG); one only
    #: the run renders is in the ledger, written before the delivery
    secretClusters: list[str | None] = Field(default_factory=list)
    #: the run ended without cleaning up after itself (a rollback failed, an unexpected
    #: error) in a process that may live on (a worker): no need to wait for it to die
    abandoned: bool = False

    def live(self) -> bool:
        """Whether a process is still working on this create."""
        return not self.abandoned and self.process.alive()

    def describe(self) -> str:
        """The one-line state ``env list`` shows for an environment with no record yet."""
        if self.abandoned:
            return ("incomplete (create failed and left resources; the next create finishes "
                    "it, env destroy cleans it)")
        if self.live():
            return (f"creating (run {self.runId} in {self.process.describe()} since "
                    f"{self.startedAt.isoformat()})")
        return ("incomplete (killed during create; the next create finishes it, "
                "env destroy cleans it)")


@dataclass
class CleanUp:
    """What cleaning up after a killed create removed, and what it could not."""

    intent: CreateIntent
    databases: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    #: image tags and provider repositories deleted
    images: list[str] = field(default_factory=list)
    repositories: list[str] = field(default_factory=list)
    #: recorded as about to be made, never as made: maybe made, never deleted blindly
    unconfirmed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"cleaned up the create of {self.intent.name!r} killed in run "
                f"{self.intent.runId}: dropped {', '.join(self.databases) or 'no database'}, "
                f"deleted {', '.join(self.secrets) or 'no Secret'}")
        if self.images:
            text += f", image(s) {', '.join(self.images)}"
        if self.repositories:
            text += f", repository(ies) {', '.join(self.repositories)}"
        if self.unconfirmed:
            text += (f"; check by hand, the run was killed while making: "
                     f"{', '.join(self.unconfirmed)}")
        return text


def intents_dir(services: Services) -> Path:
    return services.settings.paths.home / "state" / "create-intents"


def intent_file(services: Services, name: str) -> Path:
    return intents_dir(services) / f"{check_environment_name(name)}.json"


def read_intent(services: Services, name: str) -> CreateIntent | None:
    """The intent recorded for ``name``, if any."""
    return _load(intent_file(services, name))


def list_intents(services: Services) -> list[CreateIntent]:
    """Every recorded intent, by name (unreadable files are named in the error)."""
    folder = intents_dir(services)
    if not folder.is_dir():
        return []
    found = [_load(path) for path in sorted(folder.glob("*.json"))]
    return [intent for intent in found if intent is not None]


def begin_create(services: Services, name: str, template: Template, run_id: str,
                 namespace: str, owner: str | None = None) -> CreateIntent:
    """Record the intent before the create's first step; refused while another live process
    creates the same environment (a killed one must be cleaned up first:
    :func:`recover_killed_create`)."""
    intent = CreateIntent(
        name=check_environment_name(name), template=template.name, owner=owner, runId=run_id,
        namespace=namespace, startedAt=utc_now(), process=current_process(),
        databaseServers=_database_servers(template.spec.steps),
        secrets=any(step.action in SECRET_ACTIONS for step in template.spec.steps),
        secretClusters=_secret_clusters(template.spec.steps))
    path = intent_file(services, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not write_new_file(path, intent.model_dump_json(indent=2)):
        other = _load(path)
        if other is not None and other.live():
            raise _busy(other)
        raise EnvironmentExistsError(
            f"environment {name!r}: an earlier create was killed before its commit "
            f"(run {other.runId if other else '?'}); run the create again (it cleans up "
            "first) or 'envforge env destroy' it")
    return intent


def end_create(services: Services, intent: CreateIntent) -> None:
    """The run ended with nothing left behind (committed, or rolled back cleanly)."""
    path = intent_file(services, intent.name)
    current = _load(path)
    if current is not None and current.runId == intent.runId:
        path.unlink(missing_ok=True)
        ledger_path(services.settings.paths.home, intent.name).unlink(missing_ok=True)
        sync_folder(path.parent)


def abandon_create(services: Services, intent: CreateIntent) -> None:
    """The run failed and may have left resources, and its process may live on: mark the
    intent so the next create or destroy cleans up without waiting for that process."""
    path = intent_file(services, intent.name)
    current = _load(path)
    if current is None or current.runId != intent.runId:
        return
    replace_durably(path, intent.model_copy(update={"abandoned": True}).model_dump_json(indent=2))


def recover_killed_create(services: Services, name: str,
                          committed: bool | None = None) -> CleanUp | None:
    """Before a create or a destroy of ``name``: deal with the intent a killed create left.

    None when there is none. A live one is refused (another process is creating it now). One
    whose environment was committed is removed. Otherwise the killed create's databases and
    Secrets are removed and so is the intent; what could not be removed is reported and the
    intent kept (so the next attempt tries again) by raising."""
    intent = read_intent(services, name)
    if intent is None:
        return None
    if intent.live():
        raise _busy(intent)
    if committed is None:
        from envforge.gitops.repository import open_store

        with open_store(services=services) as store:
            committed = store.find(name) is not None
    if committed:
        end_create(services, intent)
        return CleanUp(intent)
    cleanup = clean_up(services, intent)
    if cleanup.problems:
        raise EnvforgeError(
            f"environment {name!r}: the create killed in run {intent.runId} left resources "
            f"that could not be removed ({'; '.join(cleanup.problems)}); fix that and run the "
            "create or 'envforge env destroy' again")
    end_create(services, intent)
    return cleanup


#: what identifies one thing in the ledger, per kind (envforge.capabilities.ledger)
LEDGER_KEYS = {"image": ("tag",), "provider-repository": ("provider", "requested"),
                "secrets": ("cluster",)}


def clean_up(services: Services, intent: CreateIntent) -> CleanUp:
    """Drop the databases the killed run marked as its own for this environment, delete the
    environment's Secrets on every cluster it may have delivered to, and delete the images and
    provider repositories its ledger records as made; each part that fails is reported, the
    others still run."""
    cleanup = CleanUp(intent=intent)
    for block in dict.fromkeys(intent.databaseServers):  # each server once, in order
        try:
            cleanup.databases += drop_databases_of_run(services, block, intent.name,
                                                       intent.runId)
            cleanup.databases += _drop_roles_of_run(services, block, intent.name, intent.runId)
        except EnvforgeError as e:
            cleanup.problems.append(f"database: {e}")
    entries = read_ledger(ledger_path(services.settings.paths.home, intent.name), intent.runId)
    made, intended = outstanding(entries, LEDGER_KEYS)
    clusters = list(intent.secretClusters) if intent.secrets else []
    clusters += [e.get("cluster") for e in intended if e.get("kind") == "secrets"]
    if intent.secrets and not clusters:
        clusters = [None]
    for cluster in dict.fromkeys(c if isinstance(c, str) else None for c in clusters):
        try:
            cleanup.secrets += remove_secrets(services, cluster, intent.namespace, intent.name)
        except EnvforgeError as e:
            where = f" on cluster block {cluster!r}" if cluster else ""
            cleanup.problems.append(f"secrets{where}: {e}")
    removed = remove_made(services, made, intended, f"clean-up of environment {intent.name!r}")
    cleanup.images += removed.images
    cleanup.repositories += removed.repositories
    cleanup.unconfirmed += removed.unconfirmed
    cleanup.problems += removed.problems
    return cleanup


def _database_servers(steps: Iterable[Any]) -> list[str | None]:
    servers: list[str | None] = []
    for step in steps:
        if step.action not in DATABASE_ACTIONS:
            continue
        block = (step.input or {}).get("targetBlock")
        servers.append(block if isinstance(block, str) and "${{" not in block else None)
    return list(dict.fromkeys(servers))


def _drop_roles_of_run(services: Services, block: str | None, environment: str,
                       run_id: str) -> list[str]:
    """The login role (db:role) the killed run made for the environment, dropped."""
    from envforge.db.actions import load_server
    from envforge.db.roles import drop_roles_of_run
    from envforge.errors import ConfigurationError

    try:
        server = load_server(block, services.connections).address()
    except ConfigurationError:
        return []  # no database server configured: the run made no role
    return [f"role {role}" for role in drop_roles_of_run(server, environment, run_id)]


def _secret_clusters(steps: Iterable[Any]) -> list[str | None]:
    clusters: list[str | None] = []
    for step in steps:
        if step.action not in SECRET_ACTIONS or step.action == "vault:secrets":
            continue  # vault:secrets renders what kubernetes:secret delivers
        block = (step.input or {}).get("clusterBlock")
        if isinstance(block, str) and "${{" not in block:
            clusters.append(block)
        elif not isinstance(block, str):
            clusters.append(None)  # an expression is recorded by the step in the ledger
    return list(dict.fromkeys(clusters))


def _busy(intent: CreateIntent) -> EnvironmentExistsError:
    return EnvironmentExistsError(
        f"environment {intent.name!r} is being created by run {intent.runId} "
        f"({intent.process.describe()}, since {intent.startedAt.isoformat()}); wait for it to "
        "finish, or stop that process")


def _load(path: Path) -> CreateIntent | None:
    return load_intent(path, CreateIntent, "create intent", "create")


def load_intent(path: Path, model: type[M], what: str, doing: str) -> M | None:
    """The ``model`` recorded at ``path`` (None if there is none); one line naming the file
    when it cannot be read or is not one envforge wrote (``what``: its kind, ``doing``: the
    run it would belong to)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise GitOpsError(f"cannot read the {what} {path}: {e.strerror}") from None
    try:
        return model.model_validate_json(text)
    except ValidationError:
        raise GitOpsError(f"{path} is not a {what} envforge wrote; remove it if no "
                          f"{doing} of that environment is running") from None


def replace_durably(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` all at once, flushed to disk (a kill leaves the old or
    the new content, never half)."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.replace")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    sync_folder(path.parent)


def write_new_file(path: Path, text: str) -> bool:
    """Write ``path`` only if it does not exist, all at once and durably: a temporary file in
    the same folder, flushed to disk, then hard-linked to the name (link refuses an existing
    name, so two writers cannot both win). False when ``path`` exists."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        sync_folder(path.parent)
        return True
    finally:
        os.unlink(tmp)


def sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
