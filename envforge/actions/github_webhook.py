"""Backstage's ``github:webhook``: create a webhook on a GitHub repository, with Backstage's
input names (repoUrl, webhookUrl, webhookSecret, events, active, contentType, insecureSsl,
token) and, as in Backstage, no outputs a template reads.

The call (``POST /repos/{owner}/{repo}/hooks``) goes to the configured GitHub API through the
one provider client, with the token bound to that origin: ``repoUrl``'s host must be the
configured GitHub host, and ``webhookUrl`` is data handed to GitHub (where GitHub will
deliver), never a place envforge sends anything to. It must be a plain http(s) URL with no
user name or password in it (those would sit in the hook's configuration).

Where Backstage only logs a warning when GitHub refuses the hook, envforge fails the step with
GitHub's reason (a template that asked for a webhook should not report success without one).
A dry run checks the inputs and calls nothing, as Backstage's. The hook this run created
(its id, as GitHub answered) is deleted again on rollback.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.actions.publish_common import check_host, check_name, open_client
from envforge.actions.publish_repository import created_by_run
from envforge.capabilities import parse_url
from envforge.errors import ActionError, EgressRefusedError
from envforge.templating.filters import parse_repo_url

#: the webhook events GitHub documents for repositories (Backstage: @octokit/webhooks' names)
GITHUB_EVENTS = (
    "*", "branch_protection_rule", "check_run", "check_suite", "code_scanning_alert",
    "commit_comment", "create", "delete", "dependabot_alert", "deploy_key", "deployment",
    "deployment_status", "discussion", "discussion_comment", "fork", "gollum",
    "issue_comment", "issues", "label", "member", "merge_group", "meta", "milestone",
    "package", "page_build", "ping", "project", "project_card", "project_column", "public",
    "pull_request", "pull_request_review", "pull_request_review_comment",
    "pull_request_review_thread", "push", "registry_package", "release", "repository",
    "repository_dispatch", "repository_import", "repository_vulnerability_alert",
    "secret_scanning_alert", "security_and_analysis", "star", "status", "team_add", "watch",
    "workflow_dispatch", "workflow_job", "workflow_run",
)


class GithubWebhookInput(ActionInput):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    repoUrl: str = Field(description="github.com?owner=<owner>&repo=<repo>.")
    webhookUrl: str = Field(description="The URL GitHub delivers the payloads to.")
    webhookSecret: str | None = Field(None, description="Secret GitHub signs deliveries with.")
    events: list[str] = Field(default_factory=lambda: ["push"], description=(
        "Events the hook is triggered for; ['*'] for all. Default ['push']."))
    active: bool = Field(True, description="Whether deliveries are sent.")
    contentType: Literal["form", "json"] = Field("form", description=(
        "Media type of the payloads (default form)."))
    insecureSsl: bool = Field(False, description=(
        "Skip verifying the delivery URL's certificate (default false)."))
    token: str | None = Field(None, description="GitHub token (else the setting).")

    @field_validator("token", mode="before")
    @classmethod
    def _names_are_not_tokens(cls, value: Any) -> Any:
        # ${{ secrets.X }} without a value given to the run renders a name: use the setting
        return value if isinstance(value, str) and not value.startswith("secret:") else None

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e not in GITHUB_EVENTS]
        if unknown:
            raise ValueError(f"unknown GitHub webhook event(s) {', '.join(unknown)}; use "
                             "GitHub's event names (push, pull_request, ...) or '*'")
        if "*" in value and len(value) > 1:
            raise ValueError("'*' stands for every event: give it alone")
        return value


class GithubWebhookOutput(ActionOutput):
    #: the hook this run created, as GitHub answered (rollback deletes exactly this)
    createdHookId: int | None = None
    createdIn: str | None = None


def _delivery_url(value: str, step: str) -> str:
    """``webhookUrl`` as GitHub will use it: an http(s) URL naming a host, no credentials."""
    try:
        parse_url(value)
    except EgressRefusedError as e:
        raise ActionError(f"{step}: webhookUrl: {e}") from None
    return value


def _secret(value: str | None, step: str) -> str | None:
    if value is not None and value.startswith("secret:"):
        raise ActionError(f"{step}: webhookSecret is the name {value[7:]!r}, not a value: "
                          "give the run that secret's value (envforge run --secret NAME=...)")
    return value or None


def _check_operator_may(ctx: ActionContext, repository: str, step: str) -> None:
    """The operator's token administers many repositories; a template may hook only the ones
    its own run created, or those the operator listed (ENVFORGE_GITHUB_WEBHOOK_REPOSITORIES).
    Otherwise any template could subscribe a URL of its choosing to any repository's pushes."""
    endpoint = ctx.capabilities.provider("github")
    if created_by_run(ctx.run_id, "github", repository):
        return
    if any(fnmatch.fnmatchcase(repository.lower(), pattern.lower())
           for pattern in endpoint.admin_repositories):
        return
    raise ActionError(
        f"{step}: repository {repository} was not created by this run and is not in "
        "ENVFORGE_GITHUB_WEBHOOK_REPOSITORIES; the operator's token hooks only those: publish "
        "it in this run first, have the operator list it, or give the step a token of your own")


class GithubWebhook(Action[GithubWebhookInput, GithubWebhookOutput]):
    id = "github:webhook"
    description = "Create a webhook for a repository on GitHub."
    input_model = GithubWebhookInput
    output_model = GithubWebhookOutput
    supports_dry_run = True
    examples = [{"id": "webhook", "name": "Create webhook", "action": "github:webhook",
                 "input": {"repoUrl": "github.com?owner=acme&repo=${{ parameters.name }}",
                           "webhookUrl": "https://ci.example.com/hooks/github",
                           "events": ["push", "pull_request"], "contentType": "json"}}]

    def _target(self, ctx: ActionContext, params: GithubWebhookInput, step: str
                ) -> tuple[str, str]:
        parts = parse_repo_url(params.repoUrl)
        check_host(parts, step, ctx.capabilities.provider("github"))
        owner = parts.get("owner", "")
        if not owner:
            raise ActionError(f"{step}: repoUrl {params.repoUrl!r} names no owner")
        return check_name(owner, "owner", step), check_name(parts.get("repo", ""), "repo", step)

    def dry_run(self, ctx: ActionContext, params: GithubWebhookInput) -> GithubWebhookOutput:
        step = f"step {ctx.step_id!r} ({self.id})"
        self._target(ctx, params, step)
        _delivery_url(params.webhookUrl, step)
        _secret(params.webhookSecret, step)
        ctx.logger.info("dry run: would create webhook %s", params.webhookUrl)
        return GithubWebhookOutput()

    def run(self, ctx: ActionContext, params: GithubWebhookInput) -> GithubWebhookOutput:
        step = f"step {ctx.step_id!r} ({self.id})"
        owner, repo = self._target(ctx, params, step)
        if params.token is None:
            _check_operator_may(ctx, f"{owner}/{repo}", step)
        client = open_client(ctx, "github", params.token, step)
        try:
            config: dict[str, Any] = {"url": _delivery_url(params.webhookUrl, step),
                                      "content_type": params.contentType,
                                      "insecure_ssl": "1" if params.insecureSsl else "0"}
            secret = _secret(params.webhookSecret, step)
            if secret:
                config["secret"] = secret
            created = client.call("POST", f"/repos/{owner}/{repo}/hooks", json={
                "name": "web", "config": config, "events": params.events,
                "active": params.active})
        finally:
            client.close()
        hook_id = created.get("id") if isinstance(created, dict) else None
        if not isinstance(hook_id, int):
            raise ActionError(f"{step}: GitHub answered no webhook id")
        ctx.logger.info("created webhook %s on %s/%s", params.webhookUrl, owner, repo)
        return GithubWebhookOutput(createdHookId=hook_id, createdIn=f"{owner}/{repo}")

    def rollback(self, ctx: ActionContext, params: GithubWebhookInput,
                 output: GithubWebhookOutput) -> None:
        if output.createdHookId is None or not output.createdIn:
            return
        step = f"rollback {ctx.step_id!r} ({self.id})"
        owner, _, repo = output.createdIn.partition("/")
        client = open_client(ctx, "github", params.token, step)
        try:
            client.request("DELETE", f"/repos/{check_name(owner, 'owner', step)}/"
                           f"{check_name(repo, 'repo', step)}/hooks/{int(output.createdHookId)}",
                           missing_ok=True)
        finally:
            client.close()
        ctx.logger.info("deleted webhook %s, which this run created", output.createdHookId)


ACTIONS: list[type[Action[Any, Any]]] = [GithubWebhook]
