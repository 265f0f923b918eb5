"""Blocks for pull-request triggers: the webhook secrets, and a token for PR comments.

``WebhookSecrets`` holds what GitHub signs with (HMAC secret) and what GitLab sends back
(secret token); `envforge webhook serve --secrets-block NAME` loads it. ``GitProviderToken``
holds a provider's API token and where its API and Git are (the summary comment and the
pull request's status use it). Secret
fields are ``SecretStr``: they never reach a log, a flow parameter or an error message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from envforge.capabilities import EgressPolicy, ProviderEndpoint
from envforge.capabilities.providers import ProviderClient, provider_client
from envforge.summary.comments import PullRequestCommenter
from envforge.summary.pr_status import PullRequestStatusReporter
from envforge.webhooks.server import WebhookCredentials


class WebhookSecrets(Block):
    """Shared secrets that authenticate GitHub and GitLab webhook deliveries."""

    _block_type_name = "envforge Webhook Secrets"
    _block_type_slug = "envforge-webhook-secrets"
    _description = "GitHub webhook HMAC secret and GitLab webhook secret token."

    github_secret: SecretStr | None = Field(
        default=None, description="The GitHub webhook's secret (X-Hub-Signature-256 HMAC key); "
        "empty disables /webhooks/github.")
    gitlab_token: SecretStr | None = Field(
        default=None, description="The GitLab webhook's secret token (X-Gitlab-Token); empty "
        "disables /webhooks/gitlab.")

    def credentials(self) -> WebhookCredentials:
        """The plain settings the webhook server works with (no Prefect types)."""
        return WebhookCredentials(self.github_secret, self.gitlab_token)

    @contextmanager
    def get_client(self) -> Iterator[WebhookCredentials]:
        """The plain webhook credentials (the prefect-kubernetes ``get_client`` shape)."""
        yield self.credentials()


class GitProviderToken(Block):
    """A Git provider's API token and where that provider is: the pull-request comment and
    status, and any step that names this block, reach exactly the API and Git origins
    configured here (never a host a template writes), through the one provider client."""

    _block_type_name = "envforge Git Provider Token"
    _block_type_slug = "envforge-git-provider-token"
    _description = ("GitHub, GitLab or Azure DevOps REST API token, and where that provider's "
                    "API and Git live.")

    provider: Literal["github", "gitlab", "azure"] = Field(
        description="Which provider's API this is.")
    token: SecretStr = Field(description="GitHub token with pull-requests:write (or issues), "
                             "plus deployments:write and statuses:write for the pull "
                             "request's status / GitLab token with the 'api' scope / Azure "
                             "DevOps personal access token with Code (read, write & manage).")
    api_url: str | None = Field(
        default=None, description="REST API base URL; default https://api.github.com, "
        "https://gitlab.com/api/v4 or https://dev.azure.com (set it for GitHub Enterprise, "
        "self-hosted GitLab or Azure DevOps Server).")
    host: str | None = Field(
        default=None, description="The repository host a step's repoUrl must name; default "
        "github.com, gitlab.com or dev.azure.com.")
    git_url: str | None = Field(
        default=None, description="Base URL git clones and pushes use; default https://<host>.")
    timeout_seconds: float = Field(default=10.0, gt=0, description=(
        "Time budget of one API call (its answer included)."))

    def endpoint(self) -> ProviderEndpoint:
        """The configured provider (API and Git origins, token bound to them)."""
        return ProviderEndpoint.configure(self.provider, self.host, self.api_url, self.git_url,
                                          self.token.get_secret_value())

    def client(self, what: str, policy: EgressPolicy | None = None) -> ProviderClient:
        """A provider client to this block's origins only (the egress capability of the
        caller, or one allowing nothing else)."""
        return provider_client(self.endpoint(), policy or EgressPolicy.deny_all(), None, what,
                               timeout_seconds=self.timeout_seconds)

    @contextmanager
    def get_client(self) -> Iterator[PullRequestCommenter]:
        """A commenter for this provider, its HTTP client closed on exit."""
        with PullRequestCommenter(self.client("pull-request comment")) as commenter:
            yield commenter

    @contextmanager
    def status_client(self) -> Iterator[PullRequestStatusReporter]:
        """A reporter of environment states (commit status, Deployment / environment)."""
        with PullRequestStatusReporter(self.client("pull-request status")) as reporter:
            yield reporter


BLOCK_TYPES: list[type[Any]] = [WebhookSecrets, GitProviderToken]
