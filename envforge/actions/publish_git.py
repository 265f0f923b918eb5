"""publish:git: commit the workspace (or part of it) to a path in a Git repository and push.

Without ``repoUrl`` the configured GitOps repository is used (ENVFORGE_GITOPS_URL, or the
embedded local bare repository). Rollback removes the commit if it is still the branch head,
and reverts it otherwise, so a failed run leaves no trace in the repository's tip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.core.config import ensure_embedded_gitops_repo, load_settings
from envforge.core.paths import resolve_inside, safe_relative
from envforge.core.secret_guard import default_guard
from envforge.git.publish_scope import (
    check_gitops_target,
    check_service_owner,
    check_target,
    gitops_scope_problem,
    path_problem,
)
from envforge.git.publishing import Author, GitPublisher, redact_url


class PublishGitInput(ActionInput):
    repoUrl: str | None = Field(
        None, description="Git URL to push to; default: the configured GitOps repository."
    )
    branch: str | None = Field(None, description="Branch; default: the configured one (main).")
    sourcePath: str = Field(".", description="Workspace subdirectory to publish.")
    targetPath: str = Field(..., description="Directory in the repository to publish into.")
    commitMessage: str | None = Field(None, description="Commit subject line.")
    replace: bool = Field(
        True, description="Remove files under targetPath that the workspace no longer has."
    )
    gitAuthorName: str = "envforge"
    gitAuthorEmail: str = "envforge@localhost"


class PublishGitOutput(ActionOutput):
    remoteUrl: str = Field(description="The repository, without credentials.")
    branch: str
    targetPath: str
    commitHash: str | None = Field(None, description="The new commit; null when nothing changed.")
    filesChanged: int = 0


class PublishGit(Action[PublishGitInput, PublishGitOutput]):
    id = "publish:git"
    git_bound = True
    description = "Commit files from the workspace to a Git repository and push them."
    input_model = PublishGitInput
    output_model = PublishGitOutput
    supports_dry_run = False
    retries = 2
    examples = [
        {
            "id": "publish",
            "name": "Publish",
            "action": "publish:git",
            "input": {"targetPath": "services/${{ parameters.name }}",
                      "commitMessage": "Add ${{ parameters.name }}"},
        }
    ]

    def _publisher(self, ctx: ActionContext, params: PublishGitInput) -> GitPublisher:
        settings = load_settings()
        url = params.repoUrl or settings.gitops_url
        if not params.repoUrl:
            ensure_embedded_gitops_repo(settings)
        return GitPublisher(
            url=url,
            branch=params.branch or settings.gitops_branch,
            cache_root=settings.cache_dir,
            author=Author(params.gitAuthorName, params.gitAuthorEmail),
            # the same scan as publish:gitops: known secret values and credential patterns
            pre_commit=default_guard(ctx.services.scrub if ctx.services else None),
        )

    def check(self, params: PublishGitInput, template_dir: Path) -> list[str]:
        """`templates validate`: a targetPath outside the template's scope (as rendered with
        example values; the run checks the real one again)."""
        if _is_gitops(params):
            problem = gitops_scope_problem(params.targetPath, None)
        else:
            problem = path_problem(params.targetPath)
        return [f"targetPath {params.targetPath!r} is outside the template's scope: {problem}"
                ] if problem else []

    def run(self, ctx: ActionContext, params: PublishGitInput) -> PublishGitOutput:
        gitops = _is_gitops(params)
        if gitops:
            environment = ctx.environment.get("name")
            check_gitops_target(ctx.step_id, self.id, params.targetPath,
                                str(environment) if environment else None)
        else:
            check_target(ctx.step_id, self.id, params.targetPath)
        source = resolve_inside(ctx.workspace, params.sourcePath, "workspace")
        target = safe_relative(params.targetPath, "repository")
        publisher = self._publisher(ctx, params)

        def owned(root: Path) -> None:
            if gitops:  # a service another template made is not this run's to replace
                check_service_owner(root, ctx.step_id, str(target), ctx.template_name)

        message = params.commitMessage or f"envforge: {ctx.template_name} into {target}"
        result = publisher.publish(
            source,
            str(target),
            message,
            replace=params.replace,
            before_write=owned,
            trailers={
                "Envforge-Template": ctx.template_name,
                "Envforge-Run": ctx.run_id,
                **({"Envforge-Environment": str(ctx.environment["name"])}
                   if ctx.environment.get("name") else {}),
            },
        )
        if result.commit:
            ctx.logger.info("pushed %s (%d file(s)) to %s %s:%s", result.commit[:12],
                            result.files_changed, publisher.safe_url, result.branch, target)
        else:
            ctx.logger.info("nothing changed under %s in %s; no commit", target,
                            publisher.safe_url)
        return PublishGitOutput(
            remoteUrl=redact_url(publisher.url),
            branch=result.branch,
            targetPath=str(target),
            commitHash=result.commit,
            filesChanged=result.files_changed,
        )

    def rollback(
        self, ctx: ActionContext, params: PublishGitInput, output: PublishGitOutput
    ) -> None:
        if not output.commitHash:
            return
        publisher = self._publisher(ctx, params)
        how = publisher.undo(
            output.commitHash,
            f"envforge: roll back {output.commitHash[:12]} of run {ctx.run_id}",
        )
        ctx.logger.info("rolled back commit %s (%s)", output.commitHash[:12], how)


def _is_gitops(params: PublishGitInput) -> bool:
    """Whether the step publishes into the configured GitOps repository (scopes apply)."""
    return params.repoUrl is None or params.repoUrl.rstrip("/") == (
        load_settings().gitops_url.rstrip("/"))


ACTIONS: list[type[Action[Any, Any]]] = [PublishGit]
