"""Change intents: an update or upgrade of an existing environment, recorded before its steps,
so what it pushes before its commit (an image built for a new commit, a provider repository)
is cleaned up when it is killed.

A create is recorded by envforge.environments.intents, which may also drop the environment's
databases and Secrets after a kill (nothing uses them yet). An update's or upgrade's run works
on a live environment: its database and Secrets are the environment's own, so a killed change
never touches them. What it made that nothing uses is what its ledger
(envforge.capabilities.ledger) records as ``made``: an image tag that was not in the registry
before (a tag that was is never recorded) or a repository it created. Before the next update,
upgrade or destroy of the environment, a killed change's ledger is worked off with the same
rules as a step's own rollback (a tag only while it still names the recorded digest and no
other tag shares it; a repository by the provider's id) and its intent removed.

``<home>/state/change-intents/<name>.json`` holds the intent (written all at once, durably,
refusing a second writer), its ledger sits beside it. The environment lock keeps two changes
of one environment apart; the intent is what survives a kill -9.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from envforge.capabilities.ledger import (
    change_intents_folder,
    change_ledger_path,
    outstanding,
    read_ledger,
)
from envforge.core.processes import ProcessIdentity, current_process
from envforge.environments.intent_cleanup import remove_made
from envforge.environments.intents import (
    LEDGER_KEYS,
    load_intent,
    replace_durably,
    sync_folder,
    write_new_file,
)
from envforge.errors import EnvforgeError, EnvironmentExistsError, StepFailedError
from envforge.gitops.naming import check_environment_name
from envforge.gitops.record import utc_now
from envforge.services import Services

ChangeKind = Literal["update", "upgrade"]


class ChangeIntent(BaseModel):
    """One update or upgrade of one existing environment, while it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    apiVersion: Literal["envforge.dev/v1alpha1"] = "envforge.dev/v1alpha1"
    kind: Literal["ChangeIntent"] = "ChangeIntent"
    name: str
    change: ChangeKind
    runId: str
    startedAt: datetime
    process: ProcessIdentity
    #: the run failed without undoing all it made, in a process that may live on (a worker)
    abandoned: bool = False

    def live(self) -> bool:
        """Whether a process is still working on this change."""
        return not self.abandoned and self.process.alive()


@dataclass
class ChangeCleanUp:
    """What cleaning up after a killed update or upgrade removed."""

    intent: ChangeIntent
    images: list[str] = field(default_factory=list)
    repositories: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        made = [*(f"image {i}" for i in self.images),
                *(f"repository {r}" for r in self.repositories)]
        text = (f"cleaned up the {self.intent.change} of {self.intent.name!r} killed in run "
                f"{self.intent.runId}: deleted {', '.join(made) or 'nothing'}")
        if self.unconfirmed:
            text += (f"; check by hand, the run was killed while making: "
                     f"{', '.join(self.unconfirmed)}")
        return text


def change_intent_file(services: Services, name: str) -> Path:
    return change_intents_folder(services.settings.paths.home) / \
        f"{check_environment_name(name)}.json"


def read_change_intent(services: Services, name: str) -> ChangeIntent | None:
    return load_intent(change_intent_file(services, name), ChangeIntent, "change intent",
                       "update or upgrade")


def recover_killed_change(services: Services, name: str) -> ChangeCleanUp | None:
    """Before an update, upgrade or destroy of ``name``: work off what a killed change of it
    left (None when there is none). A change still running in a live process is refused; what
    cannot be removed is named in the error and the intent kept, so the next attempt retries."""
    intent = read_change_intent(services, name)
    if intent is None:
        return None
    if intent.live():
        raise EnvironmentExistsError(
            f"environment {name!r} is being changed ({intent.change}) by run {intent.runId} "
            f"({intent.process.describe()}, since {intent.startedAt.isoformat()}); wait for it "
            "to finish, or stop that process")
    home = services.settings.paths.home
    entries = read_ledger(change_ledger_path(home, name), intent.runId)
    made, intended = outstanding(entries, LEDGER_KEYS)
    removed = remove_made(services, made, intended,
                          f"clean-up of the {intent.change} of environment {name!r}")
    if removed.problems:
        raise EnvforgeError(
            f"environment {name!r}: the {intent.change} killed in run {intent.runId} left "
            f"resources that could not be removed ({'; '.join(removed.problems)}); fix that "
            "and run the command again")
    _remove(services, intent)
    return ChangeCleanUp(intent, removed.images, removed.repositories, removed.unconfirmed)


def begin_change(services: Services, name: str, change: ChangeKind,
                 run_id: str) -> tuple[ChangeIntent, ChangeCleanUp | None]:
    """Record ``run_id``'s change of ``name`` before its first step, after cleaning up what a
    killed change left; returns the intent and that clean-up (None if there was nothing)."""
    cleaned = recover_killed_change(services, name)
    intent = ChangeIntent(name=check_environment_name(name), change=change, runId=run_id,
                          startedAt=utc_now(), process=current_process())
    path = change_intent_file(services, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not write_new_file(path, intent.model_dump_json(indent=2)):
        raise EnvironmentExistsError(
            f"environment {name!r} is being changed by another run (its intent {path} "
            "appeared meanwhile); wait for it to finish")
    return intent, cleaned


def end_change(services: Services, intent: ChangeIntent, clean: bool = True) -> None:
    """The change ended. ``clean``: nothing of it is left outside Git (committed, or rolled
    back), the intent goes; otherwise it is marked abandoned, so the next change or destroy
    cleans up without waiting for this (maybe long-lived) process to end."""
    current = read_change_intent(services, intent.name)
    if current is None or current.runId != intent.runId:
        return
    if clean:
        _remove(services, intent)
        return
    replace_durably(change_intent_file(services, intent.name),
                    intent.model_copy(update={"abandoned": True}).model_dump_json(indent=2))


@contextmanager
def change_recorded(services: Services | None, name: str, change: ChangeKind,
                    run_id: str) -> Iterator[ChangeCleanUp | None]:
    """Record the change for the duration of the block. It ends cleanly (the intent removed)
    when the block returns or fails with its steps rolled back; any other error marks the
    intent abandoned and an interrupt leaves it as is (this process is going away), so the
    next change or destroy cleans up. Nothing is recorded without services (a library call)."""
    if services is None:
        yield None
        return
    intent, cleaned = begin_change(services, name, change, run_id)
    outcome = "interrupted"
    try:
        yield cleaned
        outcome = "clean"
    except StepFailedError as e:
        outcome = "abandoned" if e.rollback_failures else "clean"
        raise
    except Exception:
        outcome = "abandoned"
        raise
    finally:
        if outcome != "interrupted":
            end_change(services, intent, clean=outcome == "clean")


def _remove(services: Services, intent: ChangeIntent) -> None:
    path = change_intent_file(services, intent.name)
    path.unlink(missing_ok=True)
    change_ledger_path(services.settings.paths.home, intent.name).unlink(missing_ok=True)
    sync_folder(path.parent)
