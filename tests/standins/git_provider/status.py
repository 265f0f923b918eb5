"""A local stand-in for the GitHub and GitLab endpoints envforge reports to a pull request
through, on 127.0.0.1: comments (GitHub issue comments, GitLab merge-request notes), GitHub
Deployments with their statuses and commit statuses, GitLab environments (create, edit, stop)
and commit statuses. State is in memory and every request is recorded (method, path, headers,
body). Answers carry the documented fields envforge reads, in the documented shapes:

- GitHub ``POST /repos/{o}/{r}/deployments`` 201 ``{id, sha, ref, environment,
  transient_environment, production_environment}``; ``GET .../deployments?environment=&sha=``
  200 ``[deployment]`` newest first; ``POST .../deployments/{id}/statuses`` 201 ``{id, state,
  environment_url, log_url, description}`` (state one of error, failure, inactive,
  in_progress, queued, pending, success; ``auto_inactive`` marks earlier successful
  non-transient deployments of the environment inactive); ``GET .../deployments/{id}/statuses`` 200
  ``[status]`` newest first; ``POST .../statuses/{sha}`` 201 ``{id, state,
  context, target_url, description}`` (state error, failure, pending, success).
- GitLab ``GET /projects/:id/environments?name=`` 200 ``[{id, name, slug, external_url,
  state}]``; ``POST /projects/:id/environments`` 201 (state ``available``); ``PUT
  .../environments/:environment_id`` 200; ``POST .../environments/:environment_id/stop`` 200
  (state ``stopped``); ``POST /projects/:id/statuses/:sha`` 201 ``{id, sha, ref, status,
  name, target_url, description}`` (state pending, running, success, failed, canceled).
Unknown states are refused with 422 (GitHub) / 400 (GitLab), as the providers do. ``trap``,
when set, answers a request itself (a test's slow, huge or redirecting provider)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

GITHUB_THREAD = re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/comments$")
GITHUB_EDIT = re.compile(r"^/repos/([^/]+/[^/]+)/issues/comments/(\d+)$")
GITLAB_THREAD = re.compile(r"^/projects/([^/]+)/merge_requests/(\d+)/notes$")
GITLAB_EDIT = re.compile(r"^/projects/([^/]+)/merge_requests/(\d+)/notes/(\d+)$")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeProviderState:
    token: str
    requests: list[Recorded] = field(default_factory=list)
    # (thread key) -> {comment id: body}
    threads: dict[str, dict[int, str]] = field(default_factory=dict)
    next_id: int = 100
    lock: threading.Lock = field(default_factory=threading.Lock)
    # GitHub: "owner/repo" -> [deployment], each with a "statuses" list (newest last)
    deployments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # both providers: (project, sha) -> [commit status] (newest last)
    commit_statuses: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    # GitLab: project (as in the URL) -> [environment]
    environments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


GITHUB_DEPLOYMENTS = re.compile(r"^/repos/([^/]+/[^/]+)/deployments$")
GITHUB_DEPLOYMENT_STATUSES = re.compile(r"^/repos/([^/]+/[^/]+)/deployments/(\d+)/statuses$")
GITHUB_COMMIT_STATUS = re.compile(r"^/repos/([^/]+/[^/]+)/statuses/([0-9a-f]{7,40})$")
GITLAB_ENVIRONMENTS = re.compile(r"^/projects/([^/]+)/environments$")
GITLAB_ENVIRONMENT = re.compile(r"^/projects/([^/]+)/environments/(\d+)$")
GITLAB_ENVIRONMENT_STOP = re.compile(r"^/projects/([^/]+)/environments/(\d+)/stop$")
GITLAB_COMMIT_STATUS = re.compile(r"^/projects/([^/]+)/statuses/([0-9a-f]{7,40})$")
GITHUB_DEPLOYMENT_STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending",
                            "success"}
GITHUB_COMMIT_STATES = {"error", "failure", "pending", "success"}
GITLAB_COMMIT_STATES = {"pending", "running", "success", "failed", "canceled", "skipped"}


def _status_route(state: FakeProviderState, method: str, path: str,
                  query: dict[str, list[str]], body: Any) -> tuple[int, Any] | None:
    """The answer of a status endpoint, or None when ``path`` is not one."""
    if match := GITHUB_DEPLOYMENTS.match(path):
        deployments = state.deployments.setdefault(match[1], [])
        if method == "GET":
            env, sha = query.get("environment", [None])[0], query.get("sha", [None])[0]
            found = [d for d in reversed(deployments)
                     if (env is None or d["environment"] == env) and (sha is None or d["sha"] == sha)]
            per_page = int(query.get("per_page", ["30"])[0])
            return 200, [{k: v for k, v in d.items() if k != "statuses"} for d in found[:per_page]]
        if method == "POST":
            if not body or not body.get("ref"):
                return 422, {"message": "Invalid request. \"ref\" wasn't supplied."}
            deployment = {"id": state.new_id(), "ref": body["ref"], "sha": body["ref"],
                          "environment": body.get("environment", "production"),
                          "transient_environment": bool(body.get("transient_environment")),
                          "production_environment": bool(body.get("production_environment")),
                          "description": body.get("description"), "statuses": []}
            deployments.append(deployment)
            return 201, {k: v for k, v in deployment.items() if k != "statuses"}
    if match := GITHUB_DEPLOYMENT_STATUSES.match(path):
        deployments = state.deployments.get(match[1], [])
        target: dict[str, Any] | None = next(
            (d for d in deployments if d["id"] == int(match[2])), None)
        if target is None:
            return 404, {"message": "Not Found"}
        deployment = target
        if method == "GET":  # newest first
            per_page = int(query.get("per_page", ["30"])[0])
            return 200, list(reversed(deployment["statuses"]))[:per_page]
        if (body or {}).get("state") not in GITHUB_DEPLOYMENT_STATES:
            return 422, {"message": "Validation Failed"}
        status = {"id": state.new_id(), "state": body["state"],
                  "environment_url": body.get("environment_url", ""),
                  "log_url": body.get("log_url", ""), "target_url": body.get("log_url", ""),
                  "description": body.get("description", "")}
        if body.get("auto_inactive", True) and not deployment["transient_environment"]:
            for other in deployments:
                if other is not deployment and other["environment"] == deployment["environment"] \
                        and other["statuses"] and other["statuses"][-1]["state"] == "success":
                    other["statuses"].append({"id": state.new_id(), "state": "inactive"})
        deployment["statuses"].append(status)
        return 201, status
    for pattern, states, field_name in ((GITHUB_COMMIT_STATUS, GITHUB_COMMIT_STATES, "state"),
                                        (GITLAB_COMMIT_STATUS, GITLAB_COMMIT_STATES, "status")):
        if (match := pattern.match(path)) and method == "POST":
            if (body or {}).get("state") not in states:
                return (422 if field_name == "state" else 400), {"message": "invalid state"}
            status = {"id": state.new_id(), field_name: body["state"], "sha": match[2],
                      "target_url": body.get("target_url"),
                      "description": body.get("description"),
                      "context" if field_name == "state" else "name":
                          body.get("context" if field_name == "state" else "name", "default"),
                      "ref": body.get("ref")}
            state.commit_statuses.setdefault((match[1], match[2]), []).append(status)
            return 201, status
    if match := GITLAB_ENVIRONMENTS.match(path):
        environments = state.environments.setdefault(match[1], [])
        if method == "GET":
            name = query.get("name", [None])[0]
            return 200, [e for e in environments if name is None or e["name"] == name]
        if method == "POST":
            if any(e["name"] == body["name"] for e in environments):
                return 400, {"message": {"name": ["has already been taken"]}}
            environment = {"id": state.new_id(), "name": body["name"],
                           "slug": re.sub(r"[^a-z0-9]+", "-", body["name"].lower()),
                           "external_url": body.get("external_url"),
                           "tier": body.get("tier", "other"), "state": "available"}
            environments.append(environment)
            return 201, environment
    for pattern, method_wanted in ((GITLAB_ENVIRONMENT, "PUT"), (GITLAB_ENVIRONMENT_STOP, "POST")):
        if (match := pattern.match(path)) and method == method_wanted:
            match_env: dict[str, Any] | None = next(
                (e for e in state.environments.get(match[1], []) if e["id"] == int(match[2])),
                None)
            if match_env is None:
                return 404, {"message": "404 Environment Not Found"}
            environment = match_env
            if method == "PUT":
                environment.update({k: v for k, v in (body or {}).items()
                                    if k in ("external_url", "tier")})
            else:
                environment["state"] = "stopped"
            return 200, environment
    return None


class _Handler(BaseHTTPRequestHandler):
    server: FakeProviderServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = json.loads(raw) if raw else None
        path = urlsplit(self.path).path  # raw: %2F stays encoded, as on GitLab
        query = parse_qs(urlsplit(self.path).query)
        with state.lock:
            state.requests.append(Recorded(self.command, path, dict(self.headers.items()), body))
        if self.server.trap is not None and self.server.trap(self, self.command, self.path):
            return  # a test's misbehaving provider answered itself
        github_ok = self.headers.get("Authorization") == f"Bearer {state.token}"
        gitlab_ok = self.headers.get("PRIVATE-TOKEN") == state.token
        if not (github_ok or gitlab_ok):
            self._reply(401, {"message": "Bad credentials"})
            return
        with state.lock:
            answer = _status_route(state, self.command, path, query, body)
        if answer is not None:
            self._reply(*answer)
            return
        for pattern in (GITHUB_THREAD, GITLAB_THREAD):
            match = pattern.match(path)
            if match:
                thread = state.threads.setdefault(f"{match[1]}#{match[2]}", {})
                if self.command == "GET":
                    self._reply(200, [{"id": i, "body": b} for i, b in sorted(thread.items())])
                    return
                if self.command == "POST":
                    with state.lock:
                        state.next_id += 1
                        thread[state.next_id] = body["body"]
                    self._reply(201, {"id": state.next_id, "body": body["body"]})
                    return
        for pattern, method in ((GITHUB_EDIT, "PATCH"), (GITLAB_EDIT, "PUT")):
            match = pattern.match(path)
            if match and self.command == method:
                comment_id = int(match.groups()[-1])
                for thread in state.threads.values():
                    if comment_id in thread:
                        thread[comment_id] = body["body"]
                        self._reply(200, {"id": comment_id, "body": body["body"]})
                        return
                self._reply(404, {"message": "Not Found"})
                return
        self._reply(404, {"message": f"no route {self.command} {path}"})

    do_GET = do_POST = do_PATCH = do_PUT = _handle

    def _reply(self, status: int, data: Any) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class FakeProviderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str) -> None:
        self.state = FakeProviderState(token)
        #: answers a request itself when it returns True (handler, method, raw path)
        self.trap: Callable[[BaseHTTPRequestHandler, str, str], bool] | None = None
        super().__init__(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FakeProviderServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
