"""`envforge webhook serve`: a small HTTP server for GitHub and GitLab pull-request hooks.

    POST /webhooks/github   X-Hub-Signature-256 checked over the raw body, then parsed
    POST /webhooks/gitlab   X-Gitlab-Token checked, then parsed
    GET  /healthz           {"status": "ok"}

The signature is checked before the body is parsed, so an unsigned or wrongly signed request
gets 401 and starts nothing. Bodies over the size limit get 413 unread. Responses are JSON.
Logs name the path, status and delivery id; never a header value or the body.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import SecretStr

from envforge.errors import (
    DispatchError,
    PrefectUnreachableError,
    WebhookPayloadError,
    WebhookSignatureError,
)
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

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8088
DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # PR payloads are tens of KB; GitHub's own cap is 25 MB
DEFAULT_MAX_CONCURRENT = 32  # requests handled at once; more get 503 without a thread
REQUEST_TIMEOUT_SECONDS = 30  # a client that stops sending mid-request is dropped
_BUSY_BODY = b'{"error": "too many requests in progress; retry shortly"}'
GITHUB_SECRET_ENV = "ENVFORGE_GITHUB_WEBHOOK_SECRET"
GITLAB_TOKEN_ENV = "ENVFORGE_GITLAB_WEBHOOK_TOKEN"


@dataclass(frozen=True)
class WebhookCredentials:
    """The shared secrets the providers sign with; either may be absent (provider disabled)."""

    github_secret: SecretStr | None = None
    gitlab_token: SecretStr | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> WebhookCredentials:
        env = os.environ if env is None else env
        github, gitlab = env.get(GITHUB_SECRET_ENV), env.get(GITLAB_TOKEN_ENV)
        return cls(SecretStr(github) if github else None, SecretStr(gitlab) if gitlab else None)

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


class WebhookRequestHandler(BaseHTTPRequestHandler):
    server: WebhookServer
    protocol_version = "HTTP/1.1"
    server_version = "envforge-webhooks"
    timeout = REQUEST_TIMEOUT_SECONDS
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per response on keep-alive connections).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, {"status": "ok", "providers": self.server.app.credentials.enabled})
        else:
            self._reply(404, {"error": f"no such path {self.path!r}; try /healthz"})

    def do_POST(self) -> None:
        prefix = "/webhooks/"
        if not self.path.startswith(prefix):
            self._reply(404, {"error": f"no such path {self.path!r}; POST to "
                                       "/webhooks/github or /webhooks/gitlab"})
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True  # a chunked body may follow; never read it as a request
            self._reply(411, {"error": "Content-Length is required"})
            return
        length = int(length_header)
        if length > self.server.max_body_bytes:
            self.close_connection = True  # the unread body must not be taken as a request
            self._reply(413, {"error": f"body of {length} bytes exceeds the limit of "
                                       f"{self.server.max_body_bytes}"})
            return
        body = self.rfile.read(length)
        # Each request runs in a copy of the creator's context: Prefect keeps its settings
        # (PREFECT_API_URL, profiles) in context variables, which new threads do not inherit.
        try:
            response = self.server.context.copy().run(
                self.server.app.handle, self.path[len(prefix):], dict(self.headers.items()),
                body)
        except Exception:  # a bug, not a bad request: log it, answer 500, keep serving
            logger.exception("webhook %s: unexpected error", self.path)
            response = WebhookResponse(500, {"error": "internal error; see the server's log"})
        self._reply(response.status, response.body)

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        delivery = (self.headers.get("X-GitHub-Delivery")
                    or self.headers.get("X-Gitlab-Event-UUID") or "-")
        logger.info("%s %s -> %s (delivery %s)", self.command, self.path, code, delivery)

    def log_message(self, format: str, *args: Any) -> None:
        # http.server's own messages (malformed requests) go to our logger, not stderr.
        logger.debug("webhook server: " + format, *args)


class WebhookServer(ThreadingHTTPServer):
    """Threading HTTP server carrying the app and the body limit for its handlers."""

    daemon_threads = True

    def __init__(self, app: WebhookApp, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_concurrent: int = DEFAULT_MAX_CONCURRENT) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self.context = contextvars.copy_context()
        super().__init__((host, port), WebhookRequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """One thread per connection, at most ``max_concurrent``: beyond that, 503 at once."""
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                b"application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
                                b"Content-Length: " + str(len(_BUSY_BODY)).encode() +
                                b"\r\n\r\n" + _BUSY_BODY)
            except OSError:
                pass
            finally:
                self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start_background(self) -> threading.Thread:
        """Serve from a daemon thread (tests, embedding); stop with ``shutdown()``."""
        thread = threading.Thread(target=self.serve_forever, name="envforge-webhooks",
                                  daemon=True)
        thread.start()
        return thread


