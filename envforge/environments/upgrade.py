"""Upgrading live environments to the current version of their template.

For each chosen environment: load its template as it is now, take the recorded parameters
(a parameter the new version requires gets its default, or the environment stops with the
list of what is missing), render the template's files the way ``publish:gitops`` would
(a render-only run: fetch steps run, everything else is faked), re-render the GitOps files,
diff them against the repository and commit one commit per environment. An environment whose
files would not change is skipped (no commit); one that fails is reported and the others go
on. A sleeping environment stays asleep: its new workloads are scaled to zero too. A dry run
reads the repository and commits nothing.

What the skipped steps made (an image digest, a database, Secret and ConfigMap names) is
carried forward from the environment's current files when those steps' inputs did not change
(envforge.environments.upgrade_outputs). An image whose build inputs the upgrade changes (a
``--set ref=...``) is built again, that image only (``image:build`` runs for real, and is
rolled back if the upgrade then commits nothing); any other skipped step whose inputs changed
needs ``env update``, and the upgrade of that environment says so.
"""

from __future__ import annotations

import difflib
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from envforge.environments.change_intents import begin_change, end_change
from envforge.environments.sleep import scale_to_zero
from envforge.environments.upgrade_outputs import FAKED, Carried, carry_forward
from envforge.environments.upgrade_rebuild import undo_rebuilds
from envforge.environments.upgrade_render import RenderedUpgrade, render_upgrade
from envforge.errors import (
    EnvforgeError,
    TemplateError,
)
from envforge.git.publish_scope import check_environment_paths
from envforge.gitops.record import EnvironmentRecord, utc_now
from envforge.gitops.render import application_file, environment_dir, record_file
from envforge.gitops.store import EnvironmentStore, existing_record, not_found_error
from envforge.gitops.versions import describe_version
from envforge.services import Services
from envforge.templating.loader import TemplateCatalog

Status = Literal["upgraded", "would-upgrade", "unchanged", "failed"]


@dataclass
class UpgradeOutcome:
    """One environment's upgrade: what changed (a unified diff), the commit, or the error."""

    name: str
    status: Status
    template: str = ""
    from_version: str = "unknown"
    to_version: str = "unknown"
    files: list[str] = field(default_factory=list)
    diff: str = ""
    commit: str | None = None
    defaults: list[str] = field(default_factory=list)  # new parameters that took defaults
    #: recorded outputs carried forward: "<action> <placeholder>" and "kept <file>"
    carried: list[str] = field(default_factory=list)
    #: images built again because their build inputs changed: "step <id> (<fields>)"
    rebuilt: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class UpgradeReport:
    outcomes: list[UpgradeOutcome] = field(default_factory=list)

    def having(self, *statuses: Status) -> list[UpgradeOutcome]:
        return [o for o in self.outcomes if o.status in statuses]

    @property
    def failed(self) -> list[UpgradeOutcome]:
        return self.having("failed")

    def to_dict(self) -> dict[str, Any]:
        return {"environments": [o.to_dict() for o in self.outcomes],
                **{s: [o.name for o in self.having(s)]
                   for s in ("upgraded", "would-upgrade", "unchanged", "failed")}}


def choose_environments(records: list[EnvironmentRecord], names: Iterable[str] = (),
                        template: str | None = None, all_environments: bool = False
                        ) -> tuple[list[EnvironmentRecord], list[str]]:
    """The records to upgrade (named ones, every one with ``all_environments``, or every one
    made from ``template``; ``template`` also narrows the others) and the names not found."""
    wanted = list(dict.fromkeys(names))
    if not wanted and not all_environments and template is None:
        raise EnvforgeError("name the environments to upgrade, or give --all or --template "
                            "(see 'envforge env list')")
    by_name = {r.name: r for r in records}
    missing = [n for n in wanted if n not in by_name]
    chosen = (list(records) if all_environments or (template is not None and not wanted)
              else [by_name[n] for n in wanted if n in by_name])
    if template is not None:
        chosen = [r for r in chosen if _same_template(r.spec.template, template)]
    return sorted(chosen, key=lambda r: r.name), missing


def _same_template(recorded: str, given: str) -> bool:
    return recorded == given or Path(recorded).name == given


#: What a render-only run leaves where a skipped step's output is used (runner.fake_output
#: and PlaceholderOutput).
_FAKED = FAKED


def faked_outputs(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """The actions whose faked outputs ``new`` holds and ``old`` did not: an upgrade written
    with them would deploy a placeholder (an image that was never built, say)."""
    found: set[str] = set()
    for path, text in new.items():
        before = old.get(path, "")
        for match in _FAKED.finditer(text):
            if match.group(0) not in before:
                found.add(match.group(1) or match.group(2))
    return sorted(found)


def environment_files(root: Path, name: str) -> dict[str, str]:
    """What the repository holds for ``name``: path -> text."""
    files = {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
             for p in sorted((root / environment_dir(name)).rglob("*")) if p.is_file()}
    if (root / application_file(name)).is_file():
        files[application_file(name)] = (root / application_file(name)).read_text(
            encoding="utf-8")
    return files


def unified_diff(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[list[str], str]:
    """The paths that differ and one unified diff over all of them (git-style headers)."""
    changed = sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))
    chunks: list[str] = []
    for path in changed:
        chunks.extend(difflib.unified_diff(
            old.get(path, "").splitlines(keepends=True), new.get(path, "").splitlines(
                keepends=True), f"a/{path}" if path in old else "/dev/null",
            f"b/{path}" if path in new else "/dev/null"))
    return changed, "".join(c if c.endswith("\n") else c + "\n" for c in chunks)


def _files_for(store: EnvironmentStore, record: EnvironmentRecord, manifests: Path
               ) -> tuple[EnvironmentRecord, dict[str, str]]:
    """Rendered files of ``record``; a sleeping environment's workloads stay at zero (and the
    replicas to restore at wake become the new template's)."""
    rendered = store.render(record, manifests)
    files = dict(rendered.files)
    sleeping = record.status.sleeping
    if sleeping is None:
        return record, files
    prefix = f"{environment_dir(record.name)}/manifests/"
    asleep, replicas = scale_to_zero({p[len(prefix):]: t for p, t in files.items()
                                      if p.startswith(prefix)})
    files.update({prefix + rel: text for rel, text in asleep.items()})
    record = record.model_copy(update={"status": record.status.model_copy(update={
        "sleeping": sleeping.model_copy(update={"replicas": {**sleeping.replicas,
                                                             **replicas}})})})
    files[record_file(record.name)] = record.to_yaml()
    return record, files


def upgrade_environment(store: EnvironmentStore, record: EnvironmentRecord,
                        catalog: TemplateCatalog, dry_run: bool = False,
                        run_id: str = "local",
                        overrides: Mapping[str, Any] | None = None,
                        services: Services | None = None) -> UpgradeOutcome:
    """Upgrade one environment (one commit, or none when unchanged or in a dry run); an
    expected failure is returned as a ``failed`` outcome, never raised. An image built again
    for an upgrade that then commits nothing is rolled back; a real upgrade is recorded as a
    change (envforge.environments.change_intents), so an image it pushed before being killed,
    or failed to roll back, is removed by the next change or destroy of the environment."""
    outcome = UpgradeOutcome(record.name, "failed", record.spec.template,
                             describe_version(record.status.templateVersion))
    if dry_run or services is None:
        return _upgrade(store, record, catalog, dry_run, run_id, overrides, services, outcome)
    build_run = uuid.uuid4().hex[:12]
    try:
        change, _ = begin_change(services, record.name, "upgrade", build_run)
    except EnvforgeError as e:
        outcome.error = str(e)
        return outcome
    _upgrade(store, record, catalog, dry_run, run_id, overrides, services, outcome, build_run)
    # committed: the image is the environment's now; failed: only what was not rolled back
    # is still outstanding in the ledger, and the next change removes it
    end_change(services, change, clean=outcome.commit is not None or outcome.status != "failed")
    return outcome


def _upgrade(store: EnvironmentStore, record: EnvironmentRecord, catalog: TemplateCatalog,
             dry_run: bool, run_id: str, overrides: Mapping[str, Any] | None,
             services: Services | None, outcome: UpgradeOutcome,
             build_run: str | None = None) -> UpgradeOutcome:
    try:
        prepared = render_upgrade(record, catalog, overrides, build=not dry_run,
                                  services=services, run_id=build_run)
    except EnvforgeError as e:
        outcome.error = str(e)
        return outcome
    except Exception as e:  # one broken environment must not stop the others
        outcome.error = f"environment {record.name!r}: {type(e).__name__}: {e}"
        return outcome
    try:
        outcome.defaults = prepared.defaults
        outcome.to_version = describe_version(prepared.record.status.templateVersion)
        outcome.rebuilt = [r.describe() for r in prepared.rebuilt]
        _publish(store, prepared, outcome, dry_run, run_id)
    except EnvforgeError as e:
        outcome.status, outcome.error = "failed", str(e)
    except Exception as e:  # one broken environment must not stop the others
        outcome.status = "failed"
        outcome.error = f"environment {record.name!r}: {type(e).__name__}: {e}"
    finally:
        if outcome.commit is None:  # nothing committed: no image of this upgrade stays
            problems = undo_rebuilds(prepared.rebuilt)
            if problems and outcome.error:
                outcome.error += "; rolling back the rebuilt image(s) failed: " + "; ".join(
                    problems)
        prepared.close()
    return outcome


def _publish(store: EnvironmentStore, prepared: RenderedUpgrade, outcome: UpgradeOutcome,
             dry_run: bool, run_id: str) -> None:
    name = prepared.record.name

    def compare(root: Path) -> dict[str, str] | None:
        """The files to write, or None when the environment would not change."""
        current = existing_record(root, name, "upgrade")
        # the freshly synced record, with what the upgrade changes: parameters and version
        base = current.model_copy(update={
            "spec": current.spec.model_copy(update={
                "parameters": prepared.record.spec.parameters}),
            "status": current.status.model_copy(update={
                "templateVersion": current.status.templateVersion})})
        old = environment_files(root, name)
        _, same = _files_for(store, base, prepared.manifests)
        carried = _carry(prepared, old, same)
        if carried.files == old:
            return None
        stamped = base.model_copy(update={"status": base.status.model_copy(update={
            "templateVersion": prepared.record.status.templateVersion,
            "lastDeployedAt": utc_now(), "lastRun": run_id})})
        _, new = _files_for(store, stamped, prepared.manifests)
        new = _carry(prepared, old, new).files
        outcome.carried = [f"{token} (from the current files)" for token in carried.values] + [
            f"kept {path}" for path in carried.kept]
        outcome.files, outcome.diff = unified_diff(old, new)
        return new

    if dry_run:
        found = store.publisher.read(compare)
        outcome.status = "unchanged" if found is None else "would-upgrade"
        return

    def write(root: Path) -> None:
        new = compare(root)
        if new is None:
            return
        check_environment_paths(name, list(new))
        shutil.rmtree(root / environment_dir(name))
        for rel, text in new.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")

    def message() -> tuple[str, dict[str, str]]:
        return (f"env upgrade {name}: template {prepared.record.spec.template} "
                f"{outcome.from_version} -> {outcome.to_version}",
                {"Envforge-Environment": name,
                 "Envforge-Template": prepared.record.spec.template,
                 "Envforge-Run": run_id, "Envforge-Change": "upgrade"})

    result = store.publisher.apply([environment_dir(name), application_file(name)], write,
                                   message)
    outcome.commit = result.commit
    outcome.status = "upgraded" if result.commit else "unchanged"
    if result.commit is None:
        outcome.files, outcome.diff = [], ""


def _carry(prepared: RenderedUpgrade, old: dict[str, str], files: dict[str, str]) -> Carried:
    """``files`` with the skipped steps' recorded outputs carried forward from ``old``; a
    TemplateError when a skipped step's inputs changed or an output cannot be read back."""
    name = prepared.record.name
    if prepared.input_changes:
        changed = "; ".join(f"step {sid!r} ({action}): {', '.join(fields)}"
                            for sid, (action, fields) in sorted(prepared.input_changes.items()))
        raise TemplateError(
            f"cannot upgrade environment {name!r}: the upgrade changes the inputs of steps it "
            f"does not run ({changed}); use 'envforge env update {name}' to run them again")
    if not faked_outputs(old, files) and not prepared.writers_skipped:
        return Carried(files)
    carried = carry_forward(old, files, prepared.writers_skipped,
                            under=f"{environment_dir(name)}/manifests/")
    if carried.unresolved:
        raise TemplateError(
            f"cannot upgrade environment {name!r}: its files would take outputs an upgrade "
            f"does not produce and the current files do not hold "
            f"({', '.join(carried.unresolved)}: an upgrade re-renders, it builds and clones "
            f"nothing); use 'envforge env update {name}' to run the template again")
    return carried


def upgrade_environments(store: EnvironmentStore, catalog: TemplateCatalog,
                         names: Iterable[str] = (), template: str | None = None,
                         all_environments: bool = False, dry_run: bool = False,
                         run_id: str = "local", overrides: Mapping[str, Any] | None = None,
                         on_outcome: Callable[[UpgradeOutcome], None] | None = None,
                         services: Services | None = None) -> UpgradeReport:
    """Upgrade the chosen environments one after the other; a missing name or a failing
    environment is a ``failed`` outcome and the others still run."""
    chosen, missing = choose_environments(store.list(), names, template, all_environments)
    report = UpgradeReport()
    for name in missing:
        outcome = UpgradeOutcome(name, "failed", error=str(not_found_error(name, "upgrade")))
        report.outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    for record in chosen:
        outcome = upgrade_environment(store, record, catalog, dry_run, run_id, overrides,
                                      services)
        report.outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return report
