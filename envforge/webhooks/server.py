"""`envforge webhook serve`: GitHub and GitLab pull-request hooks on uvicorn and Starlette.

    POST /webhooks/github   X-Hub-Signature-256 checked over the raw body, then parsed
    POST /webhooks/gitlab   X-Gitlab-Token checked, then parsed
    GET  /healthz           {"status": "ok"}

Limits, so slow or malformed clients cannot starve signed deliveries or /healthz:

- connections are served by one asyncio loop, so a slow client costs a socket, not a thread;
- request headers must arrive within ``header_timeout`` seconds (408, closed), headers larger
  than ``max_header_bytes`` get 431, a body larger than ``max_body_bytes`` gets 413 unread, and
  the body must arrive within ``body_timeout`` (408);
- idle keep-alive connections close after ``keep_alive_timeout``; at most ``max_connections``
  are open at once (503 beyond);
- at most ``max_concurrent`` deliveries are verified and dispatched at once (threads, since
  Prefect's client is synchronous): more get 503 with ``Retry-After: 1``. /healthz never waits.

Responses are JSON. Logs name the path, status and delivery id; never a header value or body.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import socket
import threading
import time
from typing import Any

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from envforge.webhooks.app import (
    GITHUB_SECRET_ENV,
    GITLAB_TOKEN_ENV,
    WebhookApp,
    WebhookCredentials,
    WebhookResponse,
)

__all__ = ["GITHUB_SECRET_ENV", "GITLAB_TOKEN_ENV", "WebhookApp", "WebhookCredentials",
           "WebhookResponse", "WebhookServer"]

logger = logging.getLogger("envforge.webhooks")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8088
DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # PR payloads are tens of KB; GitHub's own cap is 25 MB
DEFAULT_MAX_CONCURRENT = 32  # deliveries dispatched at once; more get 503
DEFAULT_MAX_HEADER_BYTES = 16 * 1024  # providers send about 2 KB of headers
DEFAULT_MAX_CONNECTIONS = 1000
HEADER_TIMEOUT_SECONDS = 10.0  # the request line and headers must arrive within this
BODY_TIMEOUT_SECONDS = 20.0  # the body must arrive within this once the headers are in
KEEP_ALIVE_SECONDS = 5
REQUEST_TIMEOUT_SECONDS = HEADER_TIMEOUT_SECONDS + BODY_TIMEOUT_SECONDS
_TIMEOUT_REPLY = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                  b"connection: close\r\ncontent-length: 49\r\n\r\n"
                  b'{"error": "request not received in time; retry"}\n')


class _LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request head, and 431 (not 400) for a
    head larger than h11's buffer limit."""

    header_timeout: float = HEADER_TIMEOUT_SECONDS
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_deadline: asyncio.TimerHandle | None = None
        # The response head and body go out in two writes; with Nagle on, the body waits for
        # the client's delayed ACK (~40 ms per response).
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._arm_head_deadline()  # the next request on a keep-alive connection
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm_head_deadline()  # the head is in; the app bounds the body

    def send_400_response(self, msg: str) -> None:
        buffered, _ = self.conn.trailing_data
        if len(buffered) <= self.max_header_bytes:
            super().send_400_response(msg)
            return
        body = b'{"error": "request headers too large"}'
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json"
            b"\r\nconnection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
            + body)
        self.transport.close()

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout, self._head_late)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_late(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and self.conn.our_state in (
                h11.IDLE, h11.SEND_RESPONSE):
            self.transport.write(_TIMEOUT_REPLY)
        self.transport.close()


class WebhookServer:
    """The webhook endpoints on a uvicorn server bound at construction (OSError if the port
    is taken); ``serve_forever`` in the foreground or ``start_background`` in a thread."""

    def __init__(self, app: WebhookApp, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_concurrent: int = DEFAULT_MAX_CONCURRENT,
                 max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                 header_timeout: float = HEADER_TIMEOUT_SECONDS,
                 body_timeout: float = BODY_TIMEOUT_SECONDS,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent
        self.body_timeout = body_timeout
        self.max_header_bytes = max_header_bytes
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        # Prefect keeps its settings (PREFECT_API_URL, profiles) in context variables; each
        # delivery runs in a copy of the creator's context, as its thread does not inherit it.
        self.context = contextvars.copy_context()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
            self._socket.listen(1024)
        except OSError:
            self._socket.close()
            raise
        self._socket.setblocking(False)
        protocol = type("WebhookH11Protocol", (_LimitedH11Protocol,), {
            "header_timeout": header_timeout, "max_header_bytes": max_header_bytes})
        config = uvicorn.Config(
            self.asgi_app(), http=protocol, lifespan="off", log_config=None,
            access_log=False, server_header=False, date_header=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS, timeout_graceful_shutdown=5,
            limit_concurrency=max_connections,
            # h11 refuses a head larger than this; the protocol answers it with 431
            h11_max_incomplete_event_size=max_header_bytes)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    # --- the ASGI application -----------------------------------------------------------

    def asgi_app(self) -> ASGIApp:
        routes = Starlette(routes=[
            Route("/healthz", self._healthz, methods=["GET"]),
            Route("/webhooks/{provider}", self._delivery, methods=["POST"]),
        ], exception_handlers={404: self._not_found, 405: self._not_found})
        limit = self.max_header_bytes

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            # h11 bounds a head that arrives in pieces; one that arrives whole is measured here
            if scope["type"] == "http" and sum(
                    len(k) + len(v) + 4 for k, v in scope["headers"]) > limit:
                await _reply(431, {"error": f"request headers exceed {limit} bytes"},
                             close=True)(scope, receive, send)
                return
            await routes(scope, receive, send)

        return app

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "providers": self.app.credentials.enabled})

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"no such path {request.url.path!r}; POST to "
                                      "/webhooks/github or /webhooks/gitlab, GET /healthz"},
                            status_code=404)

    async def _delivery(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        response = await self._respond(request, provider)
        delivery = (request.headers.get("x-github-delivery")
                    or request.headers.get("x-gitlab-event-uuid") or "-")
        logger.info("POST %s -> %d (delivery %s)", request.url.path, response.status_code,
                    delivery[:64])
        return response

    async def _respond(self, request: Request, provider: str) -> Response:
        length = request.headers.get("content-length")
        if length is None or not length.isdigit() or len(length) > 12:
            return _reply(411, {"error": "Content-Length is required"}, close=True)
        if int(length) > self.max_body_bytes:
            return _reply(413, {"error": f"body of {length} bytes exceeds the limit of "
                                         f"{self.max_body_bytes}"}, close=True)
        try:
            body = await asyncio.wait_for(request.body(), self.body_timeout)
        except TimeoutError:
            return _reply(408, {"error": f"body not received within {self.body_timeout:.0f}s"},
                          close=True)
        except ClientDisconnect:
            return Response(status_code=400)
        if not self._take_slot():
            return _reply(503, {"error": "too many requests in progress; retry shortly"},
                          headers={"Retry-After": "1"})
        try:
            result = await run_in_threadpool(self._handle, provider,
                                             dict(request.headers.items()), body)
        except Exception:  # a bug, not a bad request: log it, answer 500, keep serving
            logger.exception("webhook %s: unexpected error", request.url.path)
            result = WebhookResponse(500, {"error": "internal error; see the server's log"})
        finally:
            self._give_slot()
        return _reply(result.status, result.body)

    def _handle(self, provider: str, headers: dict[str, str], body: bytes) -> WebhookResponse:
        return self.context.copy().run(self.app.handle, provider, headers, body)

    def _take_slot(self) -> bool:
        with self._in_flight_lock:
            if self._in_flight >= self.max_concurrent:
                return False
            self._in_flight += 1
            return True

    def _give_slot(self) -> None:
        with self._in_flight_lock:
            self._in_flight -= 1

    # --- running ------------------------------------------------------------------------

    @property
    def server_address(self) -> tuple[str, int]:
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def serve_forever(self) -> None:
        """Serve until SIGINT/SIGTERM (uvicorn's handlers) or :meth:`shutdown`."""
        self._server.run(sockets=[self._socket])

    def start_background(self, timeout: float = 10.0) -> threading.Thread:
        """Serve from a daemon thread (tests, embedding); returns once it accepts requests."""
        self._thread = threading.Thread(target=self._run_in_thread, name="envforge-webhooks",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the webhook server did not start")
            time.sleep(0.01)
        return self._thread

    def _run_in_thread(self) -> None:
        # No signal handlers outside the main thread: shutdown() stops it.
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def shutdown(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def server_close(self) -> None:
        self._socket.close()


def _reply(status: int, body: dict[str, Any], close: bool = False,
           headers: dict[str, str] | None = None) -> Response:
    extra = dict(headers or {})
    if close:
        extra["Connection"] = "close"
    return Response(json.dumps(body), status_code=status, media_type="application/json",
                    headers=extra)
