"""Backstage's publishers: publish:github, publish:gitlab, publish:github:pull-request and
publish:gitlab:merge-request, with Backstage's input names and outputs.

Each creates the repository (or pull/merge request) through the provider's REST API and pushes
the workspace with git, under the git boundary (no hooks, no repository or user config). The
token comes from the step's ``token`` input, else ENVFORGE_GITHUB_TOKEN / ENVFORGE_GITLAB_TOKEN;
it travels in an HTTP header (git's environment, never a command line) and never appears in a
message. The API base is ``https://api.github.com`` for github.com, ``https://<host>/api/v3``
for GitHub Enterprise, ``https://<host>/api/v4`` for GitLab; ENVFORGE_GITHUB_API_URL and
ENVFORGE_GITLAB_API_URL override them (the tests point them at a local stand-in).

Inputs Backstage has that envforge does not use (collaborators, branch protection, topics…)
are accepted and ignored, so Backstage templates validate unchanged. A created repository is
deleted again on rollback; a pushed pull/merge-request branch is left for the reviewer.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import ConfigDict, Field, field_validator

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.errors import ActionError, ConfigurationError
from envforge.git_boundary import subprocess_env
from envforge.paths import resolve_inside, safe_relative
from envforge.templating.filters import parse_repo_url

Provider = Literal["github", "gitlab"]
_TIMEOUT_S = 60.0


class _ProviderInput(ActionInput):
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


class PublishRepoInput(_ProviderInput):
    description: str | None = None
    defaultBranch: str = "master"
    gitCommitMessage: str = "initial commit"
    repoVisibility: Literal["private", "internal", "public"] = "private"


class PublishRepoOutput(ActionOutput):
    remoteUrl: str
    repoContentsUrl: str
    commitHash: str
    projectId: int | None = None


class ChangeRequestInput(_ProviderInput):
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


class ProviderClient:
    """The few REST calls the publishers make, for one provider and host."""

    def __init__(self, provider: Provider, host: str, token: str | None, step: str) -> None:
        self.provider = provider
        self.host = host
        self.step = step
        env = "ENVFORGE_GITHUB_TOKEN" if provider == "github" else "ENVFORGE_GITLAB_TOKEN"
        self.token = token or os.environ.get(env) or ""
        if not self.token:
            raise ConfigurationError(f"{step}: no {provider} token: give the step a 'token' "
                                     f"input or set {env}")
        self.base = self._api_base()
        auth = ({"Authorization": f"Bearer {self.token}"} if provider == "github"
                else {"PRIVATE-TOKEN": self.token})
        self.http = httpx.Client(base_url=self.base, headers={**auth, "User-Agent": "envforge"},
                                 timeout=_TIMEOUT_S)

    def _api_base(self) -> str:
        if self.provider == "github":
            return (os.environ.get("ENVFORGE_GITHUB_API_URL")
                    or ("https://api.github.com" if self.host == "github.com"
                        else f"https://{self.host}/api/v3")).rstrip("/")
        return (os.environ.get("ENVFORGE_GITLAB_API_URL")
                or f"https://{self.host}/api/v4").rstrip("/")

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise ActionError(f"{self.step}: {self.provider} API at {self.base} did not answer "
                              f"({type(e).__name__})") from None
        if response.status_code >= 400:
            detail = response.text[:200].replace(self.token, "***")
            raise ActionError(f"{self.step}: {self.provider} API {method} {path} answered "
                              f"{response.status_code}: {detail}")
        return response.json() if response.content else {}

    def git_header(self) -> tuple[str, str]:
        user = "x-access-token" if self.provider == "github" else "oauth2"
        basic = base64.b64encode(f"{user}:{self.token}".encode()).decode()
        return ("http.extraHeader", f"Authorization: Basic {basic}")

    def close(self) -> None:
        self.http.close()


def _git(args: list[str], cwd: Path, client: ProviderClient) -> str:
    env = subprocess_env(extra_config=[client.git_header()])
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=300, check=False)
    except subprocess.TimeoutExpired:
        raise ActionError(f"{client.step}: git {args[0]} did not finish in 300 s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ActionError(f"{client.step}: git {args[0]} failed: "
                          f"{last.replace(client.token, '***')[:300]}")
    return done.stdout.strip()


def _commit_all(repo: Path, params: _ProviderInput, message: str, client: ProviderClient
                ) -> str:
    ident = ["-c", f"user.name={params.gitAuthorName}", "-c",
             f"user.email={params.gitAuthorEmail}"]
    _git(["add", "--all"], repo, client)
    _git([*ident, "commit", "--quiet", "--allow-empty", "-m", message], repo, client)
    return _git(["rev-parse", "HEAD"], repo, client)


def _copy_tree(source: Path, target: Path) -> None:
    for item in source.rglob("*"):
        if ".git" in item.relative_to(source).parts:
            continue
        dest = target / item.relative_to(source)
        if item.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif item.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, dest)


def _owner_repo(params: _ProviderInput, step: str) -> tuple[str, str, str]:
    parts = parse_repo_url(params.repoUrl)
    owner = parts.get("owner") or parts.get("organization") or ""
    if not owner:
        raise ActionError(f"{step}: repoUrl {params.repoUrl!r} names no owner")
    return parts["host"], owner, parts["repo"]


class _Publisher(Action[PublishRepoInput, PublishRepoOutput]):
    provider: Provider
    input_model = PublishRepoInput
    output_model = PublishRepoOutput
    git_bound = True

    def run(self, ctx: ActionContext, params: PublishRepoInput) -> PublishRepoOutput:
        step = f"step {ctx.step_id!r} ({self.id})"
        host, owner, repo = _owner_repo(params, step)
        source = resolve_inside(ctx.workspace, params.sourcePath, "workspace")
        client = ProviderClient(self.provider, host, params.token, step)
        try:
            clone_url, web_url, project_id = self.create(client, owner, repo, params)
            with tempfile.TemporaryDirectory(prefix="envforge-publish-") as tmp:
                work = Path(tmp)
                _copy_tree(source, work)
                _git(["init", "--quiet", "-b", params.defaultBranch], work, client)
                commit = _commit_all(work, params, params.gitCommitMessage, client)
                _git(["push", "--quiet", clone_url, f"HEAD:refs/heads/{params.defaultBranch}"],
                     work, client)
        finally:
            client.close()
        ctx.logger.info("published %s/%s to %s (%s)", owner, repo, web_url, commit[:12])
        blob = "blob" if self.provider == "github" else "-/blob"
        return PublishRepoOutput(remoteUrl=web_url, commitHash=commit, projectId=project_id,
                                 repoContentsUrl=f"{web_url}/{blob}/{params.defaultBranch}")

    def create(self, client: ProviderClient, owner: str, repo: str,
               params: PublishRepoInput) -> tuple[str, str, int | None]:
        raise NotImplementedError

    def rollback(self, ctx: ActionContext, params: PublishRepoInput,
                 output: PublishRepoOutput) -> None:
        host, owner, repo = _owner_repo(params, f"step {ctx.step_id!r} ({self.id})")
        client = ProviderClient(self.provider, host, params.token, f"rollback {ctx.step_id!r}")
        try:
            if self.provider == "github":
                client.call("DELETE", f"/repos/{owner}/{repo}")
            else:
                client.call("DELETE", f"/projects/{output.projectId}")
        finally:
            client.close()


class PublishGithub(_Publisher):
    id = "publish:github"
    provider = "github"
    description = "Create a GitHub repository and push the workspace to it."
    examples = [{"id": "publish", "action": "publish:github", "input": {
        "repoUrl": "github.com?owner=acme&repo=${{ parameters.name }}",
        "defaultBranch": "main"}}]

    def create(self, client: ProviderClient, owner: str, repo: str,
               params: PublishRepoInput) -> tuple[str, str, int | None]:
        user = client.call("GET", f"/users/{owner}")
        body = {"name": repo, "description": params.description or "",
                "private": params.repoVisibility != "public"}
        if params.repoVisibility == "internal":
            body["visibility"] = "internal"
        path = "/user/repos" if user.get("type") == "User" else f"/orgs/{owner}/repos"
        created = client.call("POST", path, json=body)
        return str(created["clone_url"]), str(created["html_url"]), None


class PublishGitlab(_Publisher):
    id = "publish:gitlab"
    provider = "gitlab"
    description = "Create a GitLab project and push the workspace to it."
    examples = [{"id": "publish", "action": "publish:gitlab", "input": {
        "repoUrl": "gitlab.com?owner=acme&repo=${{ parameters.name }}"}}]

    def create(self, client: ProviderClient, owner: str, repo: str,
               params: PublishRepoInput) -> tuple[str, str, int | None]:
        namespace = client.call("GET", f"/namespaces/{urllib.parse.quote(owner, safe='')}")
        created = client.call("POST", "/projects", json={
            "name": repo, "path": repo, "namespace_id": namespace["id"],
            "visibility": params.repoVisibility, "description": params.description or ""})
        return str(created["http_url_to_repo"]), str(created["web_url"]), int(created["id"])


class _ChangeRequest(Action[ChangeRequestInput, ChangeRequestOutput]):
    provider: Provider
    input_model = ChangeRequestInput
    output_model = ChangeRequestOutput
    git_bound = True

    def run(self, ctx: ActionContext, params: ChangeRequestInput) -> ChangeRequestOutput:
        step = f"step {ctx.step_id!r} ({self.id})"
        host, owner, repo = _owner_repo(params, step)
        source = resolve_inside(ctx.workspace, params.sourcePath, "workspace")
        target_rel = safe_relative(params.targetPath, "repository")
        client = ProviderClient(self.provider, host, params.token, step)
        try:
            clone_url, target = self.repository(client, owner, repo, params)
            with tempfile.TemporaryDirectory(prefix="envforge-change-") as tmp:
                work = Path(tmp) / "repo"
                _git(["clone", "--quiet", "--depth", "1", "--branch", target, "--",
                      clone_url, str(work)], Path(tmp), client)
                _git(["checkout", "--quiet", "-b", params.branchName], work, client)
                _copy_tree(source, work.joinpath(*target_rel.parts))
                _commit_all(work, params, params.commitMessage or params.title, client)
                _git(["push", "--quiet", "origin", f"HEAD:refs/heads/{params.branchName}"],
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
    return urllib.parse.quote(f"{owner}/{repo}", safe="")


ACTIONS: list[type[Action[Any, Any]]] = [PublishGithub, PublishGitlab, PublishGithubPullRequest,
                                         PublishGitlabMergeRequest]
