"""The run ledger: what a create run is about to make outside Git, written down *before* it
is made, so a create killed before its GitOps commit can be cleaned up by the next run.

A create records its intent (envforge.environments.intents) before its first step; the
database and Secret steps are known from the template, but a pushed image or a repository a
publisher creates on a Git provider are only known while the step runs. Such a step asks for
the run's ledger and appends one line per side effect, first ``intended`` (before the
request: what it asks for) and then ``made`` (the name or id the other side answered), and
``removed`` once its own rollback deleted it. Each line is a JSON object appended with
``O_APPEND`` and fsynced before the step goes on, so a kill -9 at any point leaves a record of
everything that may exist.

The ledger lives next to the intent (``<home>/state/create-intents/<environment>.ledger``)
and only while that intent belongs to this run. An update or upgrade of an existing
environment records a change intent instead (``<home>/state/change-intents/<environment>.json``,
envforge.environments.change_intents) and gets a ledger beside it, so an image it pushed before
being killed is cleaned up too; a scaffold run or a library call gets a ledger that records
nothing. Clean-up deletes only what a
``made`` line names, by the identity the other side answered (an id, a digest), never by what
a template wrote; an ``intended`` line without its ``made`` is reported, not deleted (the
request may not have reached the other side, and the name may be someone else's).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

#: a ledger line is small; one over this is not envforge's and is skipped
_MAX_LINE = 16 * 1024


def intents_folder(home: Path) -> Path:
    """Where create intents and their ledgers live under the envforge home."""
    return home / "state" / "create-intents"


def change_intents_folder(home: Path) -> Path:
    """Where update/upgrade intents and their ledgers live under the envforge home."""
    return home / "state" / "change-intents"


def ledger_path(home: Path, environment: str) -> Path:
    return intents_folder(home) / f"{environment}.ledger"


def change_ledger_path(home: Path, environment: str) -> Path:
    return change_intents_folder(home) / f"{environment}.ledger"


class RunLedger:
    """Appends what one run is about to make; a disabled ledger (no path) records nothing."""

    def __init__(self, path: Path | None, run_id: str) -> None:
        self.path = path
        self.run_id = run_id

    @property
    def enabled(self) -> bool:
        return self.path is not None

    @classmethod
    def for_run(cls, home: Path | None, environment: str | None, run_id: str) -> RunLedger:
        """The ledger of ``run_id`` when it is the recorded create, update or upgrade of
        ``environment``; a disabled one otherwise (no envforge home, another run's intent)."""
        if home is None or not environment or "/" in environment or environment[0] == ".":
            return cls(None, run_id)
        for folder in (intents_folder(home), change_intents_folder(home)):
            intent = folder / f"{environment}.json"
            try:
                recorded = json.loads(intent.read_text(encoding="utf-8")).get("runId")
            except (OSError, ValueError, AttributeError):
                continue
            if recorded == run_id:
                return cls(folder / f"{environment}.ledger", run_id)
        return cls(None, run_id)

    def record(self, kind: str, state: str, **details: Any) -> None:
        """Append one line (``kind``: image, provider-repository, secrets; ``state``:
        intended, made, removed), durably, before the caller goes on."""
        if self.path is None:
            return
        line = json.dumps({"runId": self.run_id, "kind": kind, "state": state, **details},
                          sort_keys=True, separators=(",", ":"))
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def read_ledger(path: Path, run_id: str) -> list[dict[str, Any]]:
    """The lines ``run_id`` appended to ``path``, in order (a torn last line is skipped)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [entry for entry in _entries(text) if entry.get("runId") == run_id]


def _entries(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        if not line.strip() or len(line) > _MAX_LINE:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a kill mid-write tears at most the last line
        if isinstance(entry, dict):
            yield entry


def outstanding(entries: list[dict[str, Any]], key: Mapping[str, tuple[str, ...]]
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(made, intended-only): ``made`` lines not followed by a ``removed`` of the same thing,
    and ``intended`` lines never followed by their ``made``. ``key`` names, per kind, the
    fields that identify one thing at each state (``intended`` is matched on the fields it
    shares with ``made``)."""
    made: dict[tuple[Any, ...], dict[str, Any]] = {}
    intended: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in entries:
        kind = str(entry.get("kind"))
        fields = key.get(kind)
        if fields is None:
            continue
        ident = (kind, *(entry.get(f) for f in fields))
        state = entry.get("state")
        if state == "intended":
            intended[ident] = entry
        elif state == "made":
            intended.pop(ident, None)
            made[ident] = entry
        elif state == "removed":
            made.pop(ident, None)
            intended.pop(ident, None)
    return list(made.values()), list(intended.values())
