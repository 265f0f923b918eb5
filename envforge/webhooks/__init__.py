"""Pull-request triggers: verify provider webhooks, map them to events, start deployments.

``verify`` checks signatures, ``events`` parses payloads, ``mapping`` picks the template,
``dispatch`` starts the Prefect deployment, ``server`` is the HTTP front (`envforge webhook
serve`). See docs/webhooks.md.
"""

from envforge.webhooks.dispatch import (
    DEFAULT_CREATE_DEPLOYMENT,
    DEFAULT_DESTROY_DEPLOYMENT,
    DeploymentRequest,
    Dispatcher,
    StartedRun,
    environment_name,
)
from envforge.webhooks.events import (
    IgnoredEvent,
    Operation,
    PullRequestEvent,
    parse_github_event,
    parse_gitlab_event,
)
from envforge.webhooks.mapping import RepositoryTemplate, TemplateMapping
from envforge.webhooks.server import WebhookApp, WebhookCredentials, WebhookServer
from envforge.webhooks.verify import github_signature, verify_github_signature, verify_gitlab_token

__all__ = [
    "DEFAULT_CREATE_DEPLOYMENT",
    "DEFAULT_DESTROY_DEPLOYMENT",
    "DeploymentRequest",
    "Dispatcher",
    "IgnoredEvent",
    "Operation",
    "PullRequestEvent",
    "RepositoryTemplate",
    "StartedRun",
    "TemplateMapping",
    "WebhookApp",
    "WebhookCredentials",
    "WebhookServer",
    "environment_name",
    "github_signature",
    "parse_github_event",
    "parse_gitlab_event",
    "verify_github_signature",
    "verify_gitlab_token",
]
