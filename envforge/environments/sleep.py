"""Putting an environment to sleep and waking it, through Git.

Sleep rewrites ``replicas`` of the environment's workloads (Deployments, StatefulSets,
ReplicaSets) to 0 in ``environments/<name>/manifests/`` and records when, why and the replicas
each had in ``status.sleeping``: one commit, and Argo CD (automated sync, self-heal) scales the
pods away. Nothing else changes: the namespace, Services, Ingresses, Secrets and the database
stay, so waking is quick. Wake writes the recorded replicas back and clears ``status.sleeping``.
A workload annotated ``envforge.dev/sleep: never`` or labelled
``app.kubernetes.io/component: database`` keeps running (an in-namespace database).

Sleep and wake do not move ``lastDeployedAt``: being put to sleep is not a deployment, and the
"no deployment for N hours" rule must keep counting from the last real one. When
``ENVFORGE_SLEEP_COUNTS_TOWARD_EXPIRY`` is false, waking pushes ``expiresAt`` out by the time
slept, and the reaper adds the current nap (see :func:`effective_expiry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

from envforge.errors import GitOpsError
from envforge.gitops.naming import check_environment_name
from envforge.gitops.record import EnvironmentRecord, SleepState, utc_now
from envforge.gitops.render import application_file, dump_documents, environment_dir, record_file
from envforge.gitops.store import EnvironmentStore, existing_record
from envforge.settings import load_settings

SCALABLE_KINDS = ("Deployment", "StatefulSet", "ReplicaSet")
KEEP_AWAKE_ANNOTATION = "envforge.dev/sleep"
COUNTS_TOWARD_EXPIRY_ENV = "ENVFORGE_SLEEP_COUNTS_TOWARD_EXPIRY"

Change = Literal["sleep", "wake"]


@dataclass(frozen=True)
class SleepResult:
    """What sleep or wake did: ``commit`` is None when the environment already was so."""

    name: str
    action: Change
    commit: str | None
    record: EnvironmentRecord
    message: str


# --- the manifests ----------------------------------------------------------------------------

def _stays_awake(document: dict[str, Any]) -> bool:
    metadata = document.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    return (str(annotations.get(KEEP_AWAKE_ANNOTATION, "")).lower() == "never"
            or labels.get("app.kubernetes.io/component") == "database")


def _workloads(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


def _key(rel: str, document: dict[str, Any]) -> str:
    return f"{rel}#{document.get('kind')}/{(document.get('metadata') or {}).get('name')}"


def scale_to_zero(manifests: dict[str, str]) -> tuple[dict[str, str], dict[str, int | None]]:
    """``manifests`` (path under manifests/ -> text) with every sleeping workload at 0
    replicas, and the replicas each had (None: the manifest left the field out). Files
    without such a workload are returned as they were, byte for byte."""
    out: dict[str, str] = {}
    before: dict[str, int | None] = {}
    for rel, text in sorted(manifests.items()):
        documents = _workloads(text)
        touched = False
        for document in documents:
            if document.get("kind") not in SCALABLE_KINDS or _stays_awake(document):
                continue
            spec = document.setdefault("spec", {})
            before[_key(rel, document)] = spec.get("replicas")
            if spec.get("replicas") != 0:
                spec["replicas"] = 0
                touched = True
        out[rel] = dump_documents(documents) if touched else text
    return out, before


def restore_replicas(manifests: dict[str, str], replicas: dict[str, int | None]
                     ) -> dict[str, str]:
    """``manifests`` with the recorded replicas written back (a workload recorded without a
    replicas field gets the field removed: Kubernetes' default, 1, applies again)."""
    out: dict[str, str] = {}
    for rel, text in sorted(manifests.items()):
        documents = _workloads(text)
        touched = False
        for document in documents:
            key = _key(rel, document)
            if key not in replicas:
                continue
            spec = document.setdefault("spec", {})
            value = replicas[key]
            if value is None:
                touched = touched or "replicas" in spec
                spec.pop("replicas", None)
            elif spec.get("replicas") != value:
                spec["replicas"] = value
                touched = True
        out[rel] = dump_documents(documents) if touched else text
    return out


def read_manifests(root: Path, name: str) -> dict[str, str]:
    """The environment's manifests in the working copy: path under manifests/ -> text."""
    base = root / environment_dir(name) / "manifests"
    return {p.relative_to(base).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(base.rglob("*")) if p.is_file()} if base.is_dir() else {}


# --- expiry -----------------------------------------------------------------------------------

def sleep_counts_toward_expiry() -> bool:
    """``ENVFORGE_SLEEP_COUNTS_TOWARD_EXPIRY`` (default true: a sleeping environment still
    expires on time; false: time asleep is added to its life)."""
    return load_settings().lifecycle.sleep_counts_toward_expiry


def effective_expiry(record: EnvironmentRecord, now: datetime | None = None,
                     counts: bool | None = None) -> datetime:
    """When the reaper should consider ``record`` expired: ``expiresAt``, plus the current
    nap when sleep does not count toward expiry (past naps were added at wake)."""
    counts = sleep_counts_toward_expiry() if counts is None else counts
    sleeping = record.status.sleeping
    if counts or sleeping is None:
        return record.status.expiresAt
    return record.status.expiresAt + max(timedelta(0), (now or utc_now()) - sleeping.since)


# --- the commits ------------------------------------------------------------------------------

def sleep_environment(store: EnvironmentStore, name: str, reason: str = "asked",
                      run_id: str = "local", now: datetime | None = None) -> SleepResult:
    """Scale ``name``'s workloads to zero in one commit; already asleep: no commit."""
    return _change(store, name, "sleep", reason, run_id, now)


def wake_environment(store: EnvironmentStore, name: str, reason: str = "asked",
                     run_id: str = "local", now: datetime | None = None) -> SleepResult:
    """Restore ``name``'s recorded replicas in one commit; already awake: no commit."""
    return _change(store, name, "wake", reason, run_id, now)


def _change(store: EnvironmentStore, name: str, action: Change, reason: str, run_id: str,
            now: datetime | None) -> SleepResult:
    check_environment_name(name)
    reason = " ".join(reason.split())[:200] or "asked"
    holder: dict[str, EnvironmentRecord] = {}
    notes: dict[str, str] = {}

    def write(root: Path) -> None:
        current = existing_record(root, name, action)
        holder["record"] = current
        when = now or utc_now()
        manifests = read_manifests(root, name)
        if action == "sleep":
            if current.status.sleeping is not None:
                notes["message"] = (f"environment {name} is already asleep (since "
                                    f"{current.status.sleeping.since.isoformat()}, "
                                    f"{current.status.sleeping.reason}); nothing committed")
                return
            changed, replicas = scale_to_zero(manifests)
            if not replicas:
                raise GitOpsError(
                    f"environment {name!r} has no workload to put to sleep (no Deployment, "
                    "StatefulSet or ReplicaSet in its manifests, or all marked "
                    f"{KEEP_AWAKE_ANNOTATION}: never); nothing committed")
            status = current.status.model_copy(update={
                "sleeping": SleepState(since=when, reason=reason, replicas=replicas),
                "lastRun": run_id})
        else:
            sleeping = current.status.sleeping
            if sleeping is None:
                notes["message"] = f"environment {name} is awake; nothing committed"
                return
            changed = restore_replicas(manifests, sleeping.replicas)
            expires = current.status.expiresAt
            if not sleep_counts_toward_expiry():
                expires += max(timedelta(0), when - sleeping.since)
            status = current.status.model_copy(update={
                "sleeping": None, "expiresAt": expires, "lastRun": run_id})
        wanted = current.model_copy(update={"status": status})
        holder["record"] = wanted
        base = root / environment_dir(name) / "manifests"
        for rel, text in changed.items():
            if text != manifests[rel]:
                (base / rel).write_text(text, encoding="utf-8")
        (root / record_file(name)).write_text(wanted.to_yaml(), encoding="utf-8")

    def message() -> tuple[str, dict[str, str]]:
        record = holder.get("record")
        return (f"env {action} {name}: {reason}",
                {"Envforge-Environment": name,
                 "Envforge-Template": record.spec.template if record else "unknown",
                 "Envforge-Run": run_id, "Envforge-Change": action})

    result = store.publisher.apply([environment_dir(name), application_file(name)], write,
                                   message)
    record = holder["record"]
    if result.commit is None:
        text = notes.get("message") or f"environment {name}: nothing changed; nothing committed"
    elif action == "sleep":
        count = len(record.status.sleeping.replicas) if record.status.sleeping else 0
        text = (f"environment {name} is asleep: {count} workload(s) scaled to 0 "
                f"(commit {result.commit[:12]}); Argo CD applies it")
    else:
        text = (f"environment {name} is awake: replicas restored (commit "
                f"{result.commit[:12]}); Argo CD applies it")
    return SleepResult(name, action, result.commit, record, text)


def describe_sleep(record: EnvironmentRecord) -> str:
    """``awake`` or ``asleep since <time> (<reason>)`` for lists and summaries."""
    sleeping = record.status.sleeping
    if sleeping is None:
        return "awake"
    return f"asleep since {sleeping.since.isoformat()} ({sleeping.reason})"
