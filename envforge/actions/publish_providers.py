"""Backstage's publishers: publish:github, publish:gitlab, publish:github:pull-request and
publish:gitlab:merge-request, with Backstage's input names and outputs.

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
are accepted and ignored, so Backstage templates validate unchanged. A repository this run
created (recorded in its output as the provider named it) is deleted again on rollback, or at
once if the push fails; one it did not create is never deleted. A pushed pull/merge-request
branch is left for the reviewer.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.capabilities import (
    ProviderEndpoint,
    WorkspaceFiles,
    check_path,
    quote_segment,
)
from envforge.capabilities.clone import clone_within_budget
from envforge.capabilities.providers import ProviderClient, provider_client
from envforge.core.git_boundary import run_git
from envforge.errors import ActionError, CapabilityError, GitError
from envforge.templating.filters import parse_repo_url

Provider = Literal["github", "gitlab"]
_GIT_TIMEOUT_S = 300.0
#: GitHub: owner 1-39 of [A-Za-z0-9-]; repository 1-100 of [A-Za-z0-9._-]. GitLab paths: the
#: same characters, groups nested with '/'. Never '.' or '..' alone, never '.git' at the end.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")


class ProviderInput(ActionInput):
    # Backstage's publishers take many provider options envforge does not use: accepted, ignored
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    repoUrl: str = Field(description="host?owner=<owner>&repo=<repo> (RepoUrlPicker).")
    token: str | None = Field(None, description="Provider token (else the setting).")
    sourcePath: str = Field(".", description="Workspace folder to publish.")
    gitAuthorName: str = "envforge"
    gitAuthorEmail: str = "envforge@localhost"

    @field_validator("token", mode="before")
    @classmethod
    def _names_are_not_tokens(cls, value: Any) -> Any:
        # ${{ secrets.X }} renders a name, never a value: the setting supplies the token
        return value if isinstance(value, str) and not value.startswith("secret:") else None


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


class ChangeRequestInput(ProviderInput):
    title: str
    description: str = ""
    branchName: str
    targetBranchName: str | None = None
    targetPath: str = "."
    commitMessage: str | None = None
    draft: bool = False


class ChangeRequestOutput(ActionOutput):
    remoteUrl: str
    pullRequestNumber: int
    targetBranchName: str
    projectid: str | None = None
    projectPath: str | None = None
    mergeRequestUrl: str | None = None


def open_client(ctx: ActionContext, provider: str, token: str | None, step: str
                ) -> ProviderClient:
    """The provider client of one step: the configured endpoint (never the template's
    host), the step's token or the operator's, through the run's egress capability."""
    endpoint = ctx.capabilities.provider(provider)
    return provider_client(endpoint, ctx.capabilities.egress, token, step)


def provider_git(args: list[str], cwd: Path, client: ProviderClient) -> str:
    try:
        return run_git(args, cwd=cwd, extra_config=client.git_config(),
                       timeout=_GIT_TIMEOUT_S, secrets=[client.token],
                       what=f"{client.what}: git {args[0]}")
    except GitError as e:
        raise ActionError(str(e)) from None


def commit_all(repo: Path, params: ProviderInput, message: str, client: ProviderClient
                ) -> str:
    ident = ["-c", f"user.name={params.gitAuthorName}", "-c",
             f"user.email={params.gitAuthorEmail}"]
    provider_git(["add", "--all"], repo, client)
    provider_git([*ident, "commit", "--quiet", "--allow-empty", "-m", message], repo, client)
    return provider_git(["rev-parse", "HEAD"], repo, client)


def copy_into(ctx: ActionContext, source_rel: str, work: Path, target_rel: str,
               describe: str) -> None:
    """The workspace's files under ``source_rel`` into ``work``/``target_rel`` through the
    file API: no link of the target repository is followed, ``.git`` is never written."""
    target = WorkspaceFiles(work, ctx.capabilities.file_budget, describe)
    try:
        target.copy_tree(ctx.files, source_rel, target_rel)
    except CapabilityError as e:
        raise ActionError(f"step {ctx.step_id!r}: {e}") from None


def check_name(value: str, what: str, step: str, nested: bool = False) -> str:
    parts = value.split("/") if nested else [value]
    for part in parts:
        if not _NAME.fullmatch(part) or part.lower().endswith((".git", ".atom")):
            raise ActionError(
                f"{step}: repoUrl {what} {value!r} is not a valid name (letters, digits, '.', "
                "'_', '-'; no '/', '..' or '.git' ending); name the repository plainly")
    return value


def _owner_repo(params: ProviderInput, step: str, endpoint: ProviderEndpoint
                ) -> tuple[str, str]:
    parts = parse_repo_url(params.repoUrl)
    owner = parts.get("owner") or parts.get("organization") or ""
    if not owner:
        raise ActionError(f"{step}: repoUrl {params.repoUrl!r} names no owner")
    host = parts["host"].lower().rstrip(".")
    if host != endpoint.host:
        raise ActionError(
            f"{step}: repoUrl host {host!r} is not the configured {endpoint.provider} host "
            f"{endpoint.host!r} (ENVFORGE_{endpoint.provider.upper()}_HOST); the token goes "
            "only to the configured provider")
    nested = endpoint.provider == "gitlab"
    return (check_name(owner, "owner", step, nested),
            check_name(parts.get("repo", ""), "repo", step))


class _Publisher(Action[PublishRepoInput, PublishRepoOutput]):
    provider: Provider
    input_model = PublishRepoInput
    output_model = PublishRepoOutput
    git_bound = True

    def run(self, ctx: ActionContext, params: PublishRepoInput) -> PublishRepoOutput:
        step = f"step {ctx.step_id!r} ({self.id})"
        client = open_client(ctx, self.provider, params.token, step)
        try:
            owner, repo = _owner_repo(params, step, client.endpoint)
            source_rel = source_rel_path(params.sourcePath, step)
            clone_url, web_url, project_id, created = self.create(client, owner, repo, params)
            try:
                client.check_clone_url(clone_url)
                with tempfile.TemporaryDirectory(prefix="envforge-publish-") as tmp:
                    work = Path(tmp)
                    copy_into(ctx, source_rel, work, "", f"repository {created}")
                    provider_git(["init", "--quiet", "-b", params.defaultBranch], work, client)
                    commit = commit_all(work, params, params.gitCommitMessage, client)
                    provider_git(["push", "--quiet", clone_url,
                          f"HEAD:refs/heads/{params.defaultBranch}"], work, client)
            except BaseException:
                # a failed action cleans up after itself: the repository it just created
                self.delete(client, created, project_id, ctx)
                raise
        finally:
            client.close()
        ctx.logger.info("published %s to %s (%s)", created, web_url, commit[:12])
        blob = "blob" if self.provider == "github" else "-/blob"
        return PublishRepoOutput(remoteUrl=web_url, commitHash=commit, projectId=project_id,
                                 repoContentsUrl=f"{web_url}/{blob}/{params.defaultBranch}",
                                 createdRepository=created)

    def create(self, client: ProviderClient, owner: str, repo: str,
               params: PublishRepoInput) -> tuple[str, str, int | None, str]:
        """(clone URL, web URL, project id, full name as the provider answered)."""
        raise NotImplementedError

    def delete(self, client: ProviderClient, created: str, project_id: int | None,
               ctx: ActionContext) -> None:
        raise NotImplementedError

    def rollback(self, ctx: ActionContext, params: PublishRepoInput,
                 output: PublishRepoOutput) -> None:
        if not output.createdRepository:
            return  # this run recorded creating nothing: nothing of it is deleted
        step = f"rollback {ctx.step_id!r} ({self.id})"
        client = open_client(ctx, self.provider, params.token, step)
        try:
            self.delete(client, output.createdRepository, output.projectId, ctx)
        finally:
            client.close()


def source_rel_path(path: str, step: str) -> str:
    try:
        return "/".join(check_path(path, f"{step} sourcePath"))
    except CapabilityError as e:
        raise ActionError(str(e)) from None


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
               params: PublishRepoInput) -> tuple[str, str, int | None, str]:
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
        return (str(created["clone_url"]), str(created["html_url"]), None,
                _full_name(full, owner, repo, client.what))

    def delete(self, client: ProviderClient, created: str, project_id: int | None,
               ctx: ActionContext) -> None:
        owner, _, repo = created.rpartition("/")
        check_name(owner, "owner", client.what)
        check_name(repo, "repo", client.what)
        client.call("DELETE", f"/repos/{owner}/{repo}")
        ctx.logger.info("deleted repository %s, which this run created", created)


class PublishGitlab(_Publisher):
    id = "publish:gitlab"
    provider = "gitlab"
    description = "Create a GitLab project and push the workspace to it."
    examples = [{"id": "publish", "action": "publish:gitlab", "input": {
        "repoUrl": "gitlab.com?owner=acme&repo=${{ parameters.name }}"}}]

    def create(self, client: ProviderClient, owner: str, repo: str,
               params: PublishRepoInput) -> tuple[str, str, int | None, str]:
        namespace = client.call("GET", f"/namespaces/{quote_segment(owner)}")
        created = client.call("POST", "/projects", json={
            "name": repo, "path": repo, "namespace_id": namespace["id"],
            "visibility": params.repoVisibility, "description": params.description or ""})
        full = str(created.get("path_with_namespace") or f"{owner}/{repo}")
        return (str(created["http_url_to_repo"]), str(created["web_url"]), int(created["id"]),
                _full_name(full, owner, repo, client.what, nested=True))

    def delete(self, client: ProviderClient, created: str, project_id: int | None,
               ctx: ActionContext) -> None:
        if project_id is None:
            return
        client.call("DELETE", f"/projects/{int(project_id)}")
        ctx.logger.info("deleted project %s, which this run created", created)


class _ChangeRequest(Action[ChangeRequestInput, ChangeRequestOutput]):
    provider: Provider
    input_model = ChangeRequestInput
    output_model = ChangeRequestOutput
    git_bound = True

    def run(self, ctx: ActionContext, params: ChangeRequestInput) -> ChangeRequestOutput:
        step = f"step {ctx.step_id!r} ({self.id})"
        client = open_client(ctx, self.provider, params.token, step)
        try:
            owner, repo = _owner_repo(params, step, client.endpoint)
            source_rel = source_rel_path(params.sourcePath, step)
            try:
                target_rel = "/".join(check_path(params.targetPath, f"{step} targetPath"))
            except CapabilityError as e:
                raise ActionError(str(e)) from None
            clone_url, target = self.repository(client, owner, repo, params)
            client.check_clone_url(clone_url)
            with tempfile.TemporaryDirectory(prefix="envforge-change-") as tmp:
                work = Path(tmp) / "repo"
                # bounded while git runs: bytes, files, time (ENVFORGE_CLONE_*)
                try:
                    clone_within_budget(
                        clone_url, work, target, budget=ctx.capabilities.run_budget.clone,
                        what=f"{client.what}: git clone of {owner}/{repo}",
                        extra_config=client.git_config(), secrets=[client.token],
                        keep_git=True)
                except (GitError, CapabilityError) as e:
                    raise ActionError(str(e)) from None
                provider_git(["checkout", "--quiet", "-b", params.branchName], work, client)
                # the clone's own links are data: a write never goes through one, and the
                # clone's .git (config, hooks) is never written
                copy_into(ctx, source_rel, work, target_rel, f"repository {owner}/{repo}")
                commit_all(work, params, params.commitMessage or params.title, client)
                provider_git(["push", "--quiet", "origin", f"HEAD:refs/heads/{params.branchName}"],
                     work, client)
            output = self.open(client, owner, repo, target, params)
        finally:
            client.close()
        ctx.logger.info("opened %s", output.remoteUrl)
        return output

    def repository(self, client: ProviderClient, owner: str, repo: str,
                   params: ChangeRequestInput) -> tuple[str, str]:
        raise NotImplementedError

    def open(self, client: ProviderClient, owner: str, repo: str, target: str,
             params: ChangeRequestInput) -> ChangeRequestOutput:
        raise NotImplementedError


class PublishGithubPullRequest(_ChangeRequest):
    id = "publish:github:pull-request"
    provider = "github"
    description = "Push the workspace to a new branch and open a GitHub pull request."
    examples = [{"id": "pr", "action": "publish:github:pull-request", "input": {
        "repoUrl": "github.com?owner=acme&repo=catalog", "branchName": "add-service",
        "title": "Add ${{ parameters.name }}", "targetPath": "services"}}]

    def repository(self, client: ProviderClient, owner: str, repo: str,
                   params: ChangeRequestInput) -> tuple[str, str]:
        info = client.call("GET", f"/repos/{owner}/{repo}")
        return str(info["clone_url"]), params.targetBranchName or str(info["default_branch"])

    def open(self, client: ProviderClient, owner: str, repo: str, target: str,
             params: ChangeRequestInput) -> ChangeRequestOutput:
        pr = client.call("POST", f"/repos/{owner}/{repo}/pulls", json={
            "title": params.title, "body": params.description, "head": params.branchName,
            "base": target, "draft": params.draft})
        return ChangeRequestOutput(remoteUrl=str(pr["html_url"]),
                                   pullRequestNumber=int(pr["number"]), targetBranchName=target)


class PublishGitlabMergeRequest(_ChangeRequest):
    id = "publish:gitlab:merge-request"
    provider = "gitlab"
    description = "Push the workspace to a new branch and open a GitLab merge request."
    examples = [{"id": "mr", "action": "publish:gitlab:merge-request", "input": {
        "repoUrl": "gitlab.com?owner=acme&repo=catalog", "branchName": "add-service",
        "title": "Add ${{ parameters.name }}"}}]

    def repository(self, client: ProviderClient, owner: str, repo: str,
                   params: ChangeRequestInput) -> tuple[str, str]:
        info = client.call("GET", f"/projects/{_project_path(owner, repo)}")
        return str(info["http_url_to_repo"]), (params.targetBranchName
                                               or str(info["default_branch"]))

    def open(self, client: ProviderClient, owner: str, repo: str, target: str,
             params: ChangeRequestInput) -> ChangeRequestOutput:
        mr = client.call("POST", f"/projects/{_project_path(owner, repo)}/merge_requests",
                         json={"source_branch": params.branchName, "target_branch": target,
                               "title": params.title, "description": params.description})
        return ChangeRequestOutput(remoteUrl=str(mr["web_url"]),
                                   pullRequestNumber=int(mr["iid"]), targetBranchName=target,
                                   projectid=str(mr.get("project_id", "")),
                                   projectPath=f"{owner}/{repo}",
                                   mergeRequestUrl=str(mr["web_url"]))


def _project_path(owner: str, repo: str) -> str:
    """GitLab's URL-encoded ``namespace/project`` (its API wants the '/' as %2F)."""
    return quote_segment(f"{owner}/{repo}")


ACTIONS: list[type[Action[Any, Any]]] = [PublishGithub, PublishGitlab, PublishGithubPullRequest,
                                         PublishGitlabMergeRequest]
