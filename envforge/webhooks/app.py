"""Handling one webhook delivery without HTTP plumbing: headers and raw body in, status and
JSON body out (the server in :mod:`envforge.webhooks.server` does the HTTP).

The signature is checked before the body is parsed, so an unsigned or wrongly signed request
gets 401 and starts nothing; a malformed body (not JSON, nested too deeply, a number of
thousands of digits, a field of the wrong type or out of range) gets 400, never 500.
Logs name the provider and field, never a header value or the body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from envforge.errors import (
    DispatchError,
    PrefectUnreachableError,
    WebhookPayloadError,
    WebhookSignatureError,
)
from envforge.settings import EnvforgeSettings, WebhookSection, load_settings
from envforge.webhooks.dispatch import Dispatcher, StartedRun
from envforge.webhooks.events import (
    IgnoredEvent,
    PullRequestEvent,
    parse_github_event,
    parse_gitlab_event,
)
from envforge.webhooks.verify import (
    GITHUB_SIGNATURE_HEADER,
    GITLAB_TOKEN_HEADER,
    verify_github_signature,
    verify_gitlab_token,
)

logger = logging.getLogger("envforge.webhooks")

GITHUB_SECRET_ENV = "ENVFORGE_GITHUB_WEBHOOK_SECRET"
GITLAB_TOKEN_ENV = "ENVFORGE_GITLAB_WEBHOOK_TOKEN"


@dataclass(frozen=True)
class WebhookCredentials:
    """The shared secrets the providers sign with; either may be absent (provider disabled)."""

    github_secret: SecretStr | None = None
    gitlab_token: SecretStr | None = None

    @classmethod
    def from_settings(cls, settings: WebhookSection) -> WebhookCredentials:
        """The secrets of the settings' webhooks section (ENVFORGE_GITHUB_WEBHOOK_SECRET,
        ENVFORGE_GITLAB_WEBHOOK_TOKEN)."""
        return cls(settings.github_secret, settings.gitlab_token)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> WebhookCredentials:
        """The same, from ``env`` (default: the process's settings)."""
        settings = load_settings() if env is None else EnvforgeSettings.from_environ(env)
        return cls.from_settings(settings.webhooks)

    @property
    def enabled(self) -> list[str]:
        return [name for name, value in (("github", self.github_secret),
                                         ("gitlab", self.gitlab_token)) if value]


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    body: dict[str, Any]


class WebhookApp:
    """Request handling without HTTP plumbing: headers and raw body in, status and JSON out."""

    def __init__(self, credentials: WebhookCredentials, dispatcher: Dispatcher) -> None:
        self.credentials = credentials
        self.dispatcher = dispatcher

    def handle(self, provider: str, headers: Mapping[str, str], body: bytes) -> WebhookResponse:
        """Verify, parse and dispatch one delivery; header names are matched case-blind."""
        headers = {name.lower(): value for name, value in headers.items()}
        secret = {"github": self.credentials.github_secret,
                  "gitlab": self.credentials.gitlab_token}.get(provider)
        if provider not in ("github", "gitlab"):
            return WebhookResponse(404, {"error": f"no webhook endpoint for {provider!r}"})
        if secret is None:
            return WebhookResponse(404, {"error": f"{provider} webhooks are not enabled on this "
                                                  "server (no secret configured)"})
        try:
            if provider == "github":
                verify_github_signature(body, headers.get(GITHUB_SIGNATURE_HEADER.lower()),
                                        secret.get_secret_value())
                parsed = parse_github_event(headers.get("x-github-event"), _json(body, provider))
            else:
                verify_gitlab_token(headers.get(GITLAB_TOKEN_HEADER.lower()),
                                    secret.get_secret_value())
                parsed = parse_gitlab_event(headers.get("x-gitlab-event"), _json(body, provider))
            if isinstance(parsed, IgnoredEvent):
                return _ignored(parsed)
            return self._dispatch(parsed)
        except WebhookSignatureError as e:
            return _refused(401, e)
        except WebhookPayloadError as e:
            return _refused(400, e)
        except PrefectUnreachableError as e:
            return _refused(503, e)
        except DispatchError as e:
            return _refused(500, e)

    def _dispatch(self, event: PullRequestEvent) -> WebhookResponse:
        result = self.dispatcher.dispatch(event)
        if isinstance(result, IgnoredEvent):
            return _ignored(result)
        return WebhookResponse(202, _started_body(event, result))


def _json(body: bytes, provider: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WebhookPayloadError(f"{provider} payload is not JSON ({e}); set the webhook's "
                                  "content type to application/json") from None
    except RecursionError:
        raise WebhookPayloadError(f"{provider} payload is nested too deeply to be a "
                                  "pull-request event") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise WebhookPayloadError(f"{provider} payload holds a value Python refuses "
                                  f"({str(e)[:80]}); nothing was started") from None
    if not isinstance(data, dict):
        raise WebhookPayloadError(f"{provider} payload is not a JSON object")
    return data


def _refused(status: int, error: Exception) -> WebhookResponse:
    # Messages name headers and fields, never a secret or a signature value.
    logger.warning("webhook refused (%d): %s", status, error)
    return WebhookResponse(status, {"error": str(error)})


def _ignored(event: IgnoredEvent) -> WebhookResponse:
    logger.info("webhook ignored: %s", event.reason)
    return WebhookResponse(202, {"status": "ignored", "reason": event.reason})


def _started_body(event: PullRequestEvent, run: StartedRun) -> dict[str, Any]:
    logger.info("webhook %s %s#%d %s: started %s (flow run %s)", event.provider,
                event.repository, event.number, event.action, run.request.deployment,
                run.flow_run_id)
    return {"status": "started", "operation": str(event.operation),
            "environment": run.request.parameters["name"],
            "deployment": run.request.deployment, "flowRunId": run.flow_run_id,
            "flowRunName": run.flow_run_name, "idempotencyKey": run.request.idempotency_key}


