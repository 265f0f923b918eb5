"""Blocks for pull-request triggers: the webhook secrets, and a token for PR comments.

``WebhookSecrets`` holds what GitHub signs with (HMAC secret) and what GitLab sends back
(secret token); `envforge webhook serve --secrets-block NAME` loads it. ``GitProviderToken``
holds an API token for posting the environment summary as a pull-request comment. Secret
fields are ``SecretStr``: they never reach a log, a flow parameter or an error message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from envforge.summary.comments import DEFAULT_API_URLS, PullRequestCommenter
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
    """An API token for commenting on pull/merge requests with the environment summary."""

    _block_type_name = "envforge Git Provider Token"
    _block_type_slug = "envforge-git-provider-token"
    _description = "GitHub or GitLab REST API token (and base URL) for pull-request comments."

    provider: Literal["github", "gitlab"] = Field(description="Which provider's API this is.")
    token: SecretStr = Field(description="GitHub token with pull-requests:write (or issues), "
                             "plus deployments:write and statuses:write for the pull "
                             "request's status / GitLab token with the 'api' scope.")
    api_url: str | None = Field(
        default=None, description="REST API base URL; default https://api.github.com or "
        "https://gitlab.com/api/v4 (set it for GitHub Enterprise or self-hosted GitLab).")
    timeout_seconds: float = Field(default=10.0, description="Per-request timeout.")

    @contextmanager
    def get_client(self) -> Iterator[PullRequestCommenter]:
        """A commenter for this provider, its HTTP client closed on exit."""
        commenter = PullRequestCommenter(
            provider=self.provider, token=self.token,
            api_url=self.api_url or DEFAULT_API_URLS[self.provider],
            timeout_seconds=self.timeout_seconds,
        )
        try:
            yield commenter
        finally:
            commenter.close()

    @contextmanager
    def status_client(self) -> Iterator[PullRequestStatusReporter]:
        """A reporter of environment states (commit status, Deployment / environment)."""
        reporter = PullRequestStatusReporter(
            provider=self.provider, token=self.token,
            api_url=self.api_url or DEFAULT_API_URLS[self.provider],
            timeout_seconds=self.timeout_seconds,
        )
        try:
            yield reporter
        finally:
            reporter.close()


BLOCK_TYPES: list[type[Any]] = [WebhookSecrets, GitProviderToken]
