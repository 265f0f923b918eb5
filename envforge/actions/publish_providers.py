"""Backstage's repository publishers publish:github and publish:gitlab, with Backstage's input
names and outputs (their pull/merge-request forms: envforge.actions.publish_change_requests,
registered from here; what they share: envforge.actions.publish_common).

Each creates the repository (or pull/merge request) through the provider's REST API and pushes
the workspace with git, under the git boundary (no hooks, no repository or user config).

Where the token goes is the operator's choice, never the template's: the provider is the one
configured (ENVFORGE_GITHUB_HOST / _API_URL / _GIT_URL, likewise GITLAB; defaults github.com,
https://api.github.com, gitlab.com, https://gitlab.com/api/v4), a ``repoUrl`` naming another
host is refused before any request, API calls go through the one provider client
(envforge.capabilities.providers: the egress capability, the token bound to the API origin,
temporary answers retried there and only there), and git gets the token as a header bound to
the configured Git origin (redirects off); a clone URL the API answers outside that origin is
refused. The token comes
from the step's ``token`` input, else ENVFORGE_GITHUB_TOKEN / ENVFORGE_GITLAB_TOKEN, and
never appears in a message. Owner and repository names are checked strictly (no ``/`` in a
name, no ``..``). The files go into the working copy through the workspace file API: the
target repository's own links are data (never written through), ``.git`` is never written.

Inputs Backstage has that envforge does not use (collaborators, branch protection, topics…)
are accepted and ignored, so Backstage templates validate unchanged. The create/push/rollback
sequence is envforge.actions.publish_repository's (shared with publish:azure): a repository
this run created is recorded in the run's ledger before the request and with the provider's
answer after it, deleted again on rollback or at once if the push fails (by the provider's id),
and cleaned up by the next create when the run was killed; one it did not create is never
deleted. A pushed pull/merge-request branch is left for the reviewer.
"""

from __future__ import annotations

from typing import Any, Literal

from envforge.actions.base import Action, ActionContext, ActionOutput
from envforge.actions.publish_change_requests import (
    ChangeRequestInput,
    ChangeRequestOutput,
    PublishGithubPullRequest,
    PublishGitlabMergeRequest,
)
from envforge.actions.publish_common import (
    ProviderInput,
    check_name,
    commit_all,
    copy_into,
    open_client,
    owner_repo,
    provider_git,
    source_rel_path,
)
from envforge.actions.publish_repository import (
    CreatedRepository,
    publish_new_repository,
    remove_created,
)
from envforge.capabilities import quote_segment
from envforge.capabilities.providers import ProviderClient
from envforge.errors import ActionError

__all__ = ["ChangeRequestInput", "ChangeRequestOutput", "ProviderInput", "PublishGithub",
           "PublishGithubPullRequest", "PublishGitlab", "PublishGitlabMergeRequest",
           "PublishRepoInput", "PublishRepoOutput", "check_name", "commit_all", "copy_into",
           "open_client", "provider_git", "source_rel_path"]

Provider = Literal["github", "gitlab"]


class PublishRepoInput(ProviderInput):
    description: str | None = None
    defaultBranch: str = "master"
    gitCommitMessage: str = "initial commit"
    repoVisibility: Literal["private", "internal", "public"] = "private"


class PublishRepoOutput(ActionOutput):
    remoteUrl: str
    repoContentsUrl: str
    commitHash: str
    projectId: int | None = None
    #: what this run created, as the provider named it (rollback deletes only this)
    createdRepository: str | None = None
    #: the provider's id of it (GitHub: rollback checks the name still has this id)
    createdRepositoryId: str | None = None


class _Publisher(Action[PublishRepoInput, PublishRepoOutput]):
    provider: Provider
    input_model = PublishRepoInput
    output_model = PublishRepoOutput
    git_bound = True

    def run(self, ctx: ActionContext, params: PublishRepoInput) -> PublishRepoOutput:
        step = f"step {ctx.step_id!r} ({self.id})"
        client = open_client(ctx, self.provider, params.token, step)
        try:
            owner, repo = owner_repo(params, step, client.endpoint)
            source_rel = source_rel_path(params.sourcePath, step)
            created, commit, _ = publish_new_repository(
                ctx, client, params, source_rel, f"{owner}/{repo}",
                lambda: self.create(client, owner, repo, params), params.defaultBranch,
                params.gitCommitMessage)
        finally:
            client.close()
        ctx.logger.info("published %s to %s (%s)", created.name, created.web_url, commit[:12])
        blob = "blob" if self.provider == "github" else "-/blob"
        project_id = int(created.id) if self.provider == "gitlab" and created.id else None
        return PublishRepoOutput(remoteUrl=created.web_url, commitHash=commit,
                                 projectId=project_id,
                                 repoContentsUrl=f"{created.web_url}/{blob}/"
                                                 f"{params.defaultBranch}",
                                 createdRepository=created.name, createdRepositoryId=created.id)

    def create(self, client: ProviderClient, owner: str, repo: str,
               params: PublishRepoInput) -> CreatedRepository:
        """The repository as the provider answered its creation."""
        raise NotImplementedError

    def rollback(self, ctx: ActionContext, params: PublishRepoInput,
                 output: PublishRepoOutput) -> None:
        if not output.createdRepository:
            return  # this run recorded creating nothing: nothing of it is deleted
        step = f"rollback {ctx.step_id!r} ({self.id})"
        client = open_client(ctx, self.provider, params.token, step)
        ident = output.createdRepositoryId
        if ident is None and output.projectId is not None:
            ident = str(output.projectId)
        try:
            owner, repo = owner_repo(params, step, client.endpoint)  # the ledger's key
            remove_created(ctx, client, CreatedRepository(
                self.provider, f"{owner}/{repo}", output.createdRepository, "", "", id=ident))
        finally:
            client.close()


def _full_name(answer: Any, owner: str, repo: str, step: str, nested: bool = False) -> str:
    """The created repository's ``owner/name`` as the provider answered it, checked as
    strictly as the request's (rollback deletes exactly this, nothing a template wrote)."""
    name = str(answer or "")
    owner_part, _, repo_part = name.rpartition("/")
    check_name(owner_part, "owner", step, nested)
    check_name(repo_part, "repo", step)
    if owner_part.lower() != owner.lower():
        raise ActionError(f"{step}: the provider created {name!r}, not under {owner!r}")
    return name


class PublishGithub(_Publisher):
    id = "publish:github"
    provider = "github"
    description = "Create a GitHub repository and push the workspace to it."
    examples = [{"id": "publish", "action": "publish:github", "input": {
        "repoUrl": "github.com?owner=acme&repo=${{ parameters.name }}",
        "defaultBranch": "main"}}]

    def create(self, client: ProviderClient, owner: str, repo: str,
               params: PublishRepoInput) -> CreatedRepository:
        user = client.call("GET", f"/users/{owner}")
        body = {"name": repo, "description": params.description or "",
                "private": params.repoVisibility != "public"}
        if params.repoVisibility == "internal":
            body["visibility"] = "internal"
        if user.get("type") == "User":
            # /user/repos creates under the token's own login, whatever the template says
            login = str(client.call("GET", "/user").get("login", ""))
            if login.lower() != owner.lower():
                raise ActionError(f"{client.what}: owner {owner!r} is a user other than the "
                                  f"token's ({login!r}); a token creates repositories only "
                                  "for its own user or an organisation")
        path = "/user/repos" if user.get("type") == "User" else f"/orgs/{owner}/repos"
        created = client.call("POST", path, json=body)
        full = str(created.get("full_name") or f"{owner}/{created.get('name', repo)}")
        ident = created.get("id")
        return CreatedRepository(
            "github", f"{owner}/{repo}", _full_name(full, owner, repo, client.what),
            str(created["clone_url"]), str(created["html_url"]),
            id=str(ident) if isinstance(ident, int) else None)


class PublishGitlab(_Publisher):
    id = "publish:gitlab"
    provider = "gitlab"
    description = "Create a GitLab project and push the workspace to it."
    examples = [{"id": "publish", "action": "publish:gitlab", "input": {
        "repoUrl": "gitlab.com?owner=acme&repo=${{ parameters.name }}"}}]

    def create(self, client: ProviderClient, owner: str, repo: str,
               params: PublishRepoInput) -> CreatedRepository:
        namespace = client.call("GET", f"/namespaces/{quote_segment(owner)}")
        created = client.call("POST", "/projects", json={
            "name": repo, "path": repo, "namespace_id": namespace["id"],
            "visibility": params.repoVisibility, "description": params.description or ""})
        full = str(created.get("path_with_namespace") or f"{owner}/{repo}")
        return CreatedRepository(
            "gitlab", f"{owner}/{repo}", _full_name(full, owner, repo, client.what, nested=True),
            str(created["http_url_to_repo"]), str(created["web_url"]), id=str(int(created["id"])))


ACTIONS: list[type[Action[Any, Any]]] = [PublishGithub, PublishGitlab, PublishGithubPullRequest,
                                         PublishGitlabMergeRequest]
