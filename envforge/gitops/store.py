"""Environments in the GitOps repository: create, list, show, update, extend, destroy, and
binding custom hosts (bind_domain, unbind_domain).

Every change is one commit (trailers Envforge-Environment, Envforge-Template, Envforge-Run)
made through :class:`~envforge.git.publishing.GitPublisher`, which syncs a cached working copy,
lets the store write, stages only this environment's paths, runs the secret guard, commits and
pushes, retrying lost races. Existence is checked against the freshly synced copy inside that
loop, so two machines creating the same name cannot both succeed. No change, no commit.
"""

from __future__ import annotations

import builtins
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from envforge.core.secret_guard import SecretGuard
from envforge.errors import EnvironmentExistsError, EnvironmentNotFoundError, TTLError
from envforge.git.publish_scope import check_environment_paths
from envforge.git.publishing import GitPublisher
from envforge.gitops.domains import check_bindable
from envforge.gitops.naming import check_custom_host, check_environment_name, environment_host
from envforge.gitops.record import (
    EnvironmentRecord,
    EnvironmentSpec,
    EnvironmentStatus,
    Metadata,
    utc_now,
)
from envforge.gitops.refresh import ClusterOpener, refresh_after_push
from envforge.gitops.render import (
    RenderedEnvironment,
    application_file,
    environment_dir,
    record_file,
    render_environment,
)
from envforge.gitops.settings import GitOpsSettings
from envforge.gitops.ttl import checked_ttl
from envforge.gitops.validate import validate_objects
from envforge.secrets.redaction import default_redactor
from envforge.services import ManifestCheck

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


@dataclass(frozen=True)
class ChangeResult:
    """What one store operation did: the commit (None when nothing changed) and the record."""

    name: str
    action: str
    commit: str | None
    files_changed: int
    record: EnvironmentRecord | None


class EnvironmentStore:
    """The environments of one GitOps repository branch."""

    def __init__(self, publisher: GitPublisher, settings: GitOpsSettings,
                 guard: SecretGuard | None = None,
                 manifest_checks: Sequence[ManifestCheck] = (),
                 cluster: ClusterOpener | None = None) -> None:
        self.publisher = publisher
        self.settings = settings
        #: run on rendered manifests after the offline validation (the services' checks)
        self.manifest_checks = tuple(manifest_checks)
        self.publisher.pre_commit = guard or SecretGuard((), default_redactor().scrub)
        # After every push through this store's publisher (its own changes, sleep, upgrade,
        # rollbacks) ask Argo CD to refresh the Applications reading this repository
        # (envforge/gitops/refresh.py), so the change reaches the cluster in seconds; on the
        # cluster ``cluster`` opens (the services' default one), none without it.
        self.publisher.after_push = refresh_after_push(self.repo_url, settings.argocd_namespace,
                                                       cluster)

    @property
    def repo_url(self) -> str:
        """The repository as Argo CD should see it: without any user or token in the URL
        (Argo CD has its own repository credentials)."""
        return _USERINFO.sub(r"\g<scheme>", self.publisher.url)

    # --- reading -------------------------------------------------------------------------
    def list(self) -> list[EnvironmentRecord]:
        """Every environment at the branch's newest commit (read without the writers' lock)."""
        return self.publisher.read_newest(lambda snapshot: read_records(snapshot.root))

    def get(self, name: str, action: str = "show") -> EnvironmentRecord:
        record = self.find(name)
        if record is None:
            raise not_found_error(name, action)
        return record

    def find(self, name: str) -> EnvironmentRecord | None:
        check_environment_name(name)
        # the newest commit's record, without waiting for a writer's commit and push (a
        # create checks again inside its commit loop, so a racing create still fails there)
        return self.publisher.read_newest(lambda snapshot: _read_record(snapshot.root, name))

    # --- building and rendering ------------------------------------------------------------
    def new_record(self, name: str, spec: EnvironmentSpec, ttl: str | None,
                   run_id: str | None = None, now: datetime | None = None,
                   host: str | None = None) -> EnvironmentRecord:
        """A record for a new environment, with a fresh random host unless one was chosen
        already (the CLI picks it before the template renders); checks name and TTL."""
        check_environment_name(name, frozenset({self.settings.argocd_namespace,
                                                self.settings.ingress_namespace}))
        if ttl is not None and not str(ttl).strip():
            raise TTLError(
                f"--ttl {ttl!r} is empty: give a duration such as 48h or 3d, or leave --ttl "
                f"out for the default ({self.settings.default_ttl})")
        seconds = checked_ttl(ttl or self.settings.default_ttl, self.settings.max_ttl_seconds)
        now = now or utc_now()
        host = host or environment_host(name, self.settings.wildcard_domain)
        return EnvironmentRecord(
            metadata=Metadata(name=name), spec=spec,
            status=EnvironmentStatus(namespace=name, host=host, url=f"https://{host}",
                                     createdAt=now, expiresAt=now + timedelta(seconds=seconds),
                                     lastDeployedAt=now, lastRun=run_id))

    def render(self, record: EnvironmentRecord, manifests_dir: Path | None) -> RenderedEnvironment:
        """Render and validate; raises before anything is written when a manifest is bad."""
        rendered = render_environment(record, manifests_dir, self.repo_url,
                                      self.publisher.branch, self.settings)
        validate_objects(rendered.objects, self.settings.kubernetes_version,
                         self.manifest_checks)
        return rendered

    # --- changing ------------------------------------------------------------------------
    def create(self, record: EnvironmentRecord, manifests_dir: Path | None,
               run_id: str = "local") -> ChangeResult:
        rendered = self.render(record, manifests_dir)  # outside the lock: it is pure

        def write(root: Path) -> None:
            if (root / environment_dir(record.name)).exists() or (
                    root / application_file(record.name)).exists():
                raise EnvironmentExistsError(
                    f"environment {record.name!r} already exists in {self.repo_url}: pick "
                    "another name, or use 'envforge env update'")
            _write_files(root, rendered)

        return self._commit("create", record, rendered.paths, write, run_id)

    def update(self, name: str, change: Callable[[EnvironmentRecord], EnvironmentRecord],
               manifests_dir: Path | None = None, run_id: str = "local",
               action: str = "update") -> ChangeResult:
        """Re-render ``name`` from ``change(current record)``; the template's manifests come
        from ``manifests_dir`` or, without one, from what the repository already holds.
        lastDeployedAt moves only when something else changed (no change, no commit)."""
        return self._rewrite(name, lambda record, _root: change(record), manifests_dir,
                             run_id, action)

    def bind_domain(self, name: str, host: str, run_id: str = "local") -> ChangeResult:
        """Add the custom host ``host`` to environment ``name`` (an extra Ingress on the same
        Service). Checked against every environment of the freshly synced copy inside the
        commit loop, so of two racing binds of one host exactly one lands; the other raises
        DomainConflictError naming the winner. Already bound: no commit (``commit`` None)."""
        wanted_host = check_custom_host(host)

        def change(record: EnvironmentRecord, root: Path) -> EnvironmentRecord:
            if wanted_host in record.spec.domains:
                return record
            check_bindable(wanted_host, record, _records_mentioning(root, wanted_host),
                           self.settings)
            return _with_domains(record, [*record.spec.domains, wanted_host])

        return self._rewrite(name, change, None, run_id, "bind-domain", wanted_host,
                             rerender_unchanged=False)

    def unbind_domain(self, name: str, host: str, run_id: str = "local") -> ChangeResult:
        """Remove the custom host ``host`` (and its Ingress) from environment ``name``; a host
        that is not bound to it changes nothing and commits nothing."""
        wanted_host = check_custom_host(host)

        def change(record: EnvironmentRecord, _root: Path) -> EnvironmentRecord:
            kept = [d for d in record.spec.domains if d != wanted_host]
            return record if kept == record.spec.domains else _with_domains(record, kept)

        return self._rewrite(name, change, None, run_id, "unbind-domain", wanted_host,
                             rerender_unchanged=False)

    def _rewrite(self, name: str,
                 change: Callable[[EnvironmentRecord, Path], EnvironmentRecord],
                 manifests_dir: Path | None, run_id: str, action: str,
                 detail: str = "", rerender_unchanged: bool = True) -> ChangeResult:
        """Re-render ``name`` from ``change(current record, synced copy root)`` in one commit;
        ``change`` runs inside the publisher's loop, against the copy it is about to commit.
        Without ``rerender_unchanged``, a record ``change`` returns as it was is left alone."""
        check_environment_name(name)
        holder: dict[str, EnvironmentRecord] = {}

        def write(root: Path) -> None:
            current = existing_record(root, name, action)
            wanted = change(current, root)
            if wanted is current and not rerender_unchanged:
                holder["record"] = current
                return
            with _manifest_source(root, name, manifests_dir) as source:
                rendered = self.render(wanted, source)
                if _same_files(root, rendered):
                    holder["record"] = wanted
                    return
                wanted = wanted.model_copy(update={"status": wanted.status.model_copy(
                    update={"lastDeployedAt": utc_now(), "lastRun": run_id})})
                rendered = self.render(wanted, source)
            holder["record"] = wanted
            shutil.rmtree(root / environment_dir(name))
            _write_files(root, rendered)

        paths = [environment_dir(name), application_file(name)]
        result = self.publisher.apply(paths, write,
                                      _message(action, name, holder, run_id, detail))
        return ChangeResult(name, action, result.commit, result.files_changed,
                            holder.get("record"))

    def extend(self, name: str, ttl: str, run_id: str = "local") -> ChangeResult:
        seconds = checked_ttl(ttl, self.settings.max_ttl_seconds)
        return self.update(name, lambda record: record.extended(seconds), None, run_id,
                           action="extend")

    def destroy(self, name: str, run_id: str = "local") -> ChangeResult:
        """One commit removing ``environments/<name>/`` and ``argocd/<name>.yaml``; Argo CD's
        finalizer then prunes everything the Application deployed."""
        check_environment_name(name)
        holder: dict[str, EnvironmentRecord] = {}

        def write(root: Path) -> None:
            current = _read_record(root, name)
            if current is None and not (root / application_file(name)).exists():
                raise not_found_error(name, "destroy")
            if current is not None:
                holder["record"] = current
            shutil.rmtree(root / environment_dir(name), ignore_errors=True)
            (root / application_file(name)).unlink(missing_ok=True)

        paths = [environment_dir(name), application_file(name)]
        result = self.publisher.apply(paths, write, _message("destroy", name, holder, run_id))
        return ChangeResult(name, "destroy", result.commit, result.files_changed,
                            holder.get("record"))

    def undo(self, commit: str, run_id: str) -> str:
        """Take back one change (rollback of a completed step)."""
        return self.publisher.undo(commit, f"envforge: roll back {commit[:12]} of run {run_id}")

    def _commit(self, action: str, record: EnvironmentRecord, paths: builtins.list[str],
                write: Callable[[Path], None], run_id: str) -> ChangeResult:
        holder: dict[str, EnvironmentRecord] = {"record": record}
        result = self.publisher.apply(paths, write, _message(action, record.name, holder, run_id))
        return ChangeResult(record.name, action, result.commit, result.files_changed, record)


def _message(action: str, name: str, holder: dict[str, EnvironmentRecord],
             run_id: str, detail: str = "") -> Callable[[], tuple[str, dict[str, str]]]:
    """The commit message and trailers, built after the write (when the record is known);
    ``detail`` (a custom host) ends the subject line."""

    def build() -> tuple[str, dict[str, str]]:
        record = holder.get("record")
        template = record.spec.template if record else "unknown"
        trailers = {"Envforge-Environment": name, "Envforge-Template": template,
                    "Envforge-Run": run_id, "Envforge-Change": action}
        return f"env {action} {name}{f' {detail}' if detail else ''}", trailers

    return build


def _with_domains(record: EnvironmentRecord, domains: list[str]) -> EnvironmentRecord:
    return record.model_copy(update={"spec": record.spec.model_copy(
        update={"domains": domains})})


def not_found_error(name: str, action: str) -> EnvironmentNotFoundError:
    """The one-line error for ``action`` (sleep, upgrade, ...) on an environment that does not
    exist."""
    return EnvironmentNotFoundError(
        f"cannot {action} environment {name!r}: it does not exist in the GitOps repository "
        "(see 'envforge env list')")


def existing_record(root: Path, name: str, action: str) -> EnvironmentRecord:
    """Environment ``name``'s record in the working copy at ``root``, or the not-found error
    for ``action``: for writers that change an environment inside the publisher's loop."""
    record = _read_record(root, name)
    if record is None:
        raise not_found_error(name, action)
    return record


def _read_record(root: Path, name: str) -> EnvironmentRecord | None:
    file = root / record_file(name)
    if not file.is_file():
        return None
    return EnvironmentRecord.from_yaml(file.read_text(encoding="utf-8"), record_file(name))


def read_records(root: Path) -> list[EnvironmentRecord]:
    """Every environment record in a checkout (or snapshot) of the repository at ``root``."""
    base = root / "environments"
    if not base.is_dir():
        return []
    return [EnvironmentRecord.from_yaml(f.read_text(encoding="utf-8"),
                                        str(f.relative_to(root)))
            for f in sorted(base.glob("*/environment.yaml"))]


def _records_mentioning(root: Path, host: str) -> builtins.list[EnvironmentRecord]:
    """The records whose text holds ``host`` (any case): only those can have it as their host
    or a custom host, and skipping the YAML parse of the rest keeps a bind cheap."""
    base = root / "environments"
    found: builtins.list[EnvironmentRecord] = []
    for file in sorted(base.glob("*/environment.yaml")) if base.is_dir() else []:
        text = file.read_text(encoding="utf-8")
        if host in text.lower():
            found.append(EnvironmentRecord.from_yaml(text, str(file.relative_to(root))))
    return found


def _write_files(root: Path, rendered: RenderedEnvironment) -> None:
    check_environment_paths(rendered.name, list(rendered.files))
    for rel, text in rendered.files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def _same_files(root: Path, rendered: RenderedEnvironment) -> bool:
    """Whether the repository already holds exactly these files for the environment."""
    existing = {p.relative_to(root).as_posix() for p in
                (root / environment_dir(rendered.name)).rglob("*") if p.is_file()}
    if (root / application_file(rendered.name)).is_file():
        existing.add(application_file(rendered.name))
    if existing != set(rendered.files):
        return False
    return all((root / rel).read_text(encoding="utf-8") == text
               for rel, text in rendered.files.items())


@contextmanager
def _manifest_source(root: Path, name: str, given: Path | None) -> Iterator[Path | None]:
    """The template's manifests: those given, or the repository's minus the platform's."""
    if given is not None:
        yield given
        return
    current = root / environment_dir(name) / "manifests"
    with tempfile.TemporaryDirectory(prefix="envforge-manifests-") as tmp:
        for file in current.rglob("*"):
            rel = file.relative_to(current)
            if file.is_file() and not rel.as_posix().startswith("envforge-"):
                (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, Path(tmp) / rel)
        yield Path(tmp)
