"""publish:gitops: write the run's environment into the GitOps repository for Argo CD.

The template's manifests (a workspace directory, usually what ``fetch:template`` rendered)
become ``environments/<name>/manifests/`` next to the platform's isolation objects, the
Environment record and ``argocd/<name>.yaml``; all are validated before one commit is pushed.
Name, type, host, owner and TTL come from the run's ``environment`` (set by ``envforge env``)
unless the step gives them. Rollback takes the commit back (drop if still head, else revert).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.core.config import load_settings, settings_view
from envforge.core.paths import resolve_inside
from envforge.core.sensitive import credential_paths
from envforge.errors import ActionError, EnvforgeError, TemplateNotFoundError
from envforge.gitops.record import (
    EnvironmentRecord,
    EnvironmentSpec,
    EnvironmentType,
    Isolation,
    Source,
    public_parameters,
)
from envforge.gitops.repository import open_store
from envforge.gitops.store import ChangeResult, EnvironmentStore
from envforge.gitops.versions import template_version
from envforge.templating.loader import TemplateCatalog, load_template
from envforge.templating.parameters import pages

Mode = Literal["create", "update", "upsert"]


class PublishGitOpsInput(ActionInput):
    manifestsPath: str | None = Field(
        None, description="Workspace directory of the manifests; default: the one directory "
        "named 'manifests' in the workspace.")
    name: str | None = Field(None, description="Environment name; default environment.name.")
    mode: Mode | None = Field(None, description="create, update or upsert (default: "
                              "environment.mode, else upsert).")
    type: EnvironmentType | None = Field(None, description="preview, development or staging.")
    owner: str | None = Field(None, description="Owner (group:<name> gets the RBAC role).")
    ttl: str | None = Field(None, description="Time to live such as 48h or 3d.")
    parameters: dict[str, Any] = Field(default_factory=dict,
                                       description="Parameters to record (no secret values).")
    source: Source | None = Field(None, description="repository, branch, pullRequest, commit.")
    isolation: Isolation | None = Field(None, description="namespace, vcluster or cluster.")
    repoUrl: str | None = Field(None, description="GitOps repository; default: configured.")
    branch: str | None = Field(None, description="Branch; default: configured.")


class PublishGitOpsOutput(ActionOutput):
    name: str
    url: str = Field(description="Where the environment is reachable.")
    namespace: str
    commitHash: str | None = Field(None, description="The commit; null when nothing changed.")
    change: str = Field(description="create or update")
    filesChanged: int = 0


class PublishGitOps(Action[PublishGitOpsInput, PublishGitOpsOutput]):
    id = "publish:gitops"
    description = ("Render the environment (manifests, isolation, Argo CD Application and "
                   "Environment record), validate it and commit it to the GitOps repository.")
    input_model = PublishGitOpsInput
    output_model = PublishGitOpsOutput
    supports_dry_run = True
    git_bound = True  # its input (parameters) is written to Git: no secret references
    retries = 2
    examples = [{
        "id": "environment",
        "name": "Publish the environment",
        "action": "publish:gitops",
        "input": {"manifestsPath": "service/manifests", "parameters": "${{ parameters }}"},
    }]

    def run(self, ctx: ActionContext, params: PublishGitOpsInput) -> PublishGitOpsOutput:
        return self._publish(ctx, params, commit=True)

    def dry_run(self, ctx: ActionContext, params: PublishGitOpsInput) -> PublishGitOpsOutput:
        return self._publish(ctx, params, commit=False)

    def rollback(self, ctx: ActionContext, params: PublishGitOpsInput,
                 output: PublishGitOpsOutput) -> None:
        if not output.commitHash:
            return
        with open_store(params.repoUrl, params.branch, services=ctx.services) as store:
            how = store.undo(output.commitHash, ctx.run_id)
        ctx.logger.info("rolled back environment %s commit %s (%s)", output.name,
                        output.commitHash[:12], how)

    def _publish(self, ctx: ActionContext, params: PublishGitOpsInput,
                 commit: bool) -> PublishGitOpsOutput:
        env = dict(ctx.environment)
        name = params.name or env.get("name")
        if not name:
            raise ActionError(f"step {ctx.step_id!r}: publish:gitops needs an environment "
                              "name: run it through 'envforge env create', or give input.name")
        manifests = find_manifests(ctx, params.manifestsPath)
        recorded, dropped = public_parameters(params.parameters, _marked_credentials(ctx))
        if dropped:
            ctx.logger.warning("not recorded in Git (look like credentials): %s",
                               ", ".join(dropped))
        mode = params.mode or env.get("mode") or "upsert"
        # A dry run renders and validates only: it neither reads nor creates any repository.
        settings = settings_view(ctx.services.settings) if ctx.services else load_settings()
        url = params.repoUrl or (None if commit else settings.gitops_url)
        with open_store(url, params.branch, services=ctx.services) as store:
            current = (None if not commit or mode == "create"
                       else store.get(str(name), "update") if mode == "update"
                       else store.find(str(name)))
            if current is None:
                result = self._create(ctx, params, store, str(name), env, recorded,
                                      manifests, commit)
            else:
                result = self._update(ctx, params, store, current, recorded, manifests,
                                      commit)
        record = result.record
        assert record is not None
        if result.commit:
            ctx.logger.info("environment %s: %s committed %s (%d file(s)); url %s", name,
                            result.action, result.commit[:12], result.files_changed,
                            record.status.url)
        else:
            ctx.logger.info("environment %s: nothing changed%s", name,
                            "" if commit else " (dry run: rendered and validated only)")
        return PublishGitOpsOutput(name=record.name, url=record.status.url,
                                   namespace=record.status.namespace, commitHash=result.commit,
                                   change=result.action, filesChanged=result.files_changed)

    def _create(self, ctx: ActionContext, params: PublishGitOpsInput, store: EnvironmentStore,
                name: str, env: dict[str, Any], recorded: dict[str, Any],
                manifests: Path, commit: bool) -> ChangeResult:
        spec = EnvironmentSpec(
            template=recorded_template(ctx),
            type=params.type or env.get("type") or "preview",
            owner=params.owner or env.get("owner") or str(recorded.get("owner") or "unknown"),
            parameters=recorded,
            source=params.source or Source.model_validate(env.get("source") or {}),
            isolation=params.isolation or Isolation.model_validate(env.get("isolation") or {}),
        )
        record = store.new_record(name, spec, params.ttl or env.get("ttl"), ctx.run_id,
                                  host=env.get("host"))
        record = _with_template_version(ctx, record)
        if not commit:
            store.render(record, manifests)
            return ChangeResult(name, "create", None, 0, record)
        return store.create(record, manifests, ctx.run_id)

    def _update(self, ctx: ActionContext, params: PublishGitOpsInput, store: EnvironmentStore,
                current: EnvironmentRecord, recorded: dict[str, Any],
                manifests: Path, commit: bool) -> ChangeResult:
        def change(record: EnvironmentRecord) -> EnvironmentRecord:
            spec = record.spec.model_copy(update={
                "template": recorded_template(ctx), "parameters": recorded,
                **({"source": params.source} if params.source else {}),
                **({"isolation": params.isolation} if params.isolation else {}),
                **({"type": params.type} if params.type else {}),
                **({"owner": params.owner} if params.owner else {})})
            return _with_template_version(ctx, record.model_copy(update={"spec": spec}))

        if not commit:
            store.render(change(current), manifests)
            return ChangeResult(current.name, "update", None, 0, change(current))
        return store.update(current.name, change, manifests, ctx.run_id)


def recorded_template(ctx: ActionContext) -> str:
    """What the record names as its template: the name when the configured templates path
    finds this very template by it, else its directory (a template given by path), so that
    'envforge env update' can always load it again."""
    catalog = TemplateCatalog(load_settings().templates_path)
    try:
        if catalog.resolve(ctx.template_name).resolve() == ctx.template_dir.resolve():
            return ctx.template_name
    except TemplateNotFoundError:
        pass
    return str(ctx.template_dir.resolve())


def _with_template_version(ctx: ActionContext, record: EnvironmentRecord) -> EnvironmentRecord:
    """The record stamped with the version of the template this run rendered (kept as it was
    when the template cannot be read: the run itself has loaded it, so that is rare)."""
    try:
        version = template_version(load_template(ctx.template_dir))
    except EnvforgeError:
        return record
    return record.model_copy(update={"status": record.status.model_copy(
        update={"templateVersion": version})})


def _marked_credentials(ctx: ActionContext) -> set[str]:
    """Parameter paths the template's schema marks as credentials (ui:field Secret,
    ui:widget password, format password)."""
    try:
        template = load_template(ctx.template_dir)
    except EnvforgeError:
        return set()
    return credential_paths(pages(template))


def find_manifests(ctx: ActionContext, path: str | None) -> Path:
    """The workspace directory holding the template's manifests (given, or found)."""
    if path is not None:
        manifests = resolve_inside(ctx.workspace, path, "workspace")
        if not manifests.is_dir():
            raise ActionError(f"step {ctx.step_id!r}: manifestsPath {path!r} is not a "
                              "directory of the workspace (did a fetch step render it?)")
        return manifests
    found = sorted((p for p in ctx.workspace.rglob("manifests") if p.is_dir()),
                   key=lambda p: (len(p.parts), str(p)))
    if not found:
        raise ActionError(f"step {ctx.step_id!r}: no 'manifests' directory in the workspace; "
                          "render the template's Kubernetes manifests there, or give "
                          "manifestsPath")
    return found[0]


ACTIONS: list[type[Action[Any, Any]]] = [PublishGitOps]
