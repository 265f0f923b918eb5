"""Backstage's publish:github:pull-request and publish:gitlab:merge-request: push the
workspace to a new branch of an existing repository and open a pull (merge) request.

The target repository is cloned within the clone budget (ENVFORGE_CLONE_*: bytes, files,
time) from the clone URL the configured provider's API answers (only under the configured
Git base); the workspace's files go into that clone through the workspace file API, so the
clone's own links are data (never written through) and its ``.git`` is never written. The
pushed branch is left for the reviewer: nothing is created that rollback would delete.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from envforge.actions.base import Action, ActionContext, ActionOutput
from envforge.actions.publish_common import (
    ProviderInput,
    commit_all,
    copy_into,
    open_client,
    owner_repo,
    provider_git,
    source_rel_path,
)
from envforge.capabilities import check_path, quote_segment
from envforge.capabilities.clone import clone_within_budget
from envforge.capabilities.providers import ProviderClient
from envforge.core.retry import retry_temporary
from envforge.errors import (
    ActionError,
    CapabilityError,
    GitError,
    RetriesExhaustedError,
)

Provider = Literal["github", "gitlab"]


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


class _ChangeRequest(Action[ChangeRequestInput, ChangeRequestOutput]):
    provider: Provider
    input_model = ChangeRequestInput
    output_model = ChangeRequestOutput
    git_bound = True

    def run(self, ctx: ActionContext, params: ChangeRequestInput) -> ChangeRequestOutput:
        step = f"step {ctx.step_id!r} ({self.id})"
        client = open_client(ctx, self.provider, params.token, step)
        try:
            owner, repo = owner_repo(params, step, client.endpoint)
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
                what = f"{client.what}: git clone of {owner}/{repo}"
                try:
                    # a network failure (temporary) is cloned again under the client's retry
                    # policy, the one retry layer; the destination is gone after each failure
                    retry_temporary(lambda _: clone_within_budget(
                        clone_url, work, target, budget=ctx.capabilities.run_budget.clone,
                        what=what, extra_config=client.git_config(), secrets=[client.token],
                        keep_git=True), client.retry, what,
                        "the Git server did not answer; run again later", sleep=client.sleep)
                except (GitError, CapabilityError, RetriesExhaustedError) as e:
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


ACTIONS: list[type[Action[Any, Any]]] = [PublishGithubPullRequest, PublishGitlabMergeRequest]
