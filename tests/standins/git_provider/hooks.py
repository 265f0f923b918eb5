"""GitHub repository webhooks, as the REST API documents them (Repositories > Webhooks:
create, list, get, delete), for the publishing stand-in; routes under ``/github``.

- ``POST /repos/{owner}/{repo}/hooks`` with ``{name?: "web", config{url, content_type,
  secret, insecure_ssl}, events?: ["push"], active?: true}``: 201 and the hook ``{type:
  "Repository", id, name: "web", active, events, config{content_type, insecure_ssl, url,
  secret: "********" when one is set}, updated_at, created_at, url, test_url, ping_url,
  deliveries_url, last_response{code, status: "unused", message}}``; the secret is never
  answered back.
- 422 ``{"message": "Validation Failed", "errors": [{"resource": "Hook", "code": "custom",
  "message": ...}], "documentation_url": ...}`` for: no ``config.url``; a URL that is not
  http(s) or points at a host GitHub will not deliver to ("url is not supported because it
  isn't reachable over the public Internet (localhost)"); a ``content_type`` other than
  json/form; an unknown event; a hook with the same URL already on the repository ("Hook
  already exists on this repository"); a ``name`` other than "web".
- 404 ``{"message": "Not Found", ...}`` for a repository that does not exist (also what a
  token without admin rights on it gets).
- ``GET /repos/{owner}/{repo}/hooks?per_page=&page=``: 200, a page (default 30, at most 100)
  with a ``Link`` header (``rel="next"``, ``rel="last"``) while more pages follow.
- ``DELETE /repos/{owner}/{repo}/hooks/{hook_id}``: 204; an unknown id 404.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOOKS = re.compile(r"^/github/repos/([^/]+)/([^/]+)/hooks$")
HOOK = re.compile(r"^/github/repos/([^/]+)/([^/]+)/hooks/(\d+)$")
DOCS = "https://docs.github.com/rest/repos/webhooks#create-a-repository-webhook"
#: the repository webhook events GitHub documents (a subset is enough to refuse unknown ones)
EVENTS = {
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
}


def _invalid(message: str) -> tuple[int, Any]:
    return 422, {"message": "Validation Failed", "documentation_url": DOCS,
                 "errors": [{"resource": "Hook", "code": "custom", "message": message}]}


def _unreachable_host(host: str) -> bool:
    if host in ("localhost",) or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


@dataclass
class RepositoryHooks:
    """The webhooks of each repository (``owner/repo``) that exists."""

    exists: Any  # (owner, repo) -> bool
    base: str
    hooks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    secrets: dict[int, str] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(4100))

    def handle(self, method: str, raw_path: str, body: Any
               ) -> tuple[int, Any, dict[str, str]] | None:
        """(status, body, extra headers), or None when the path is not a hooks route."""
        split = urlsplit(raw_path)
        match = HOOKS.match(split.path) or HOOK.match(split.path)
        if not match:
            return None
        owner, repo = match[1], match[2]
        if not self.exists(owner, repo):
            return 404, {"message": "Not Found", "documentation_url": DOCS}, {}
        key = f"{owner}/{repo}"
        hooks = self.hooks.setdefault(key, [])
        if match.re is HOOK:
            hook = next((h for h in hooks if h["id"] == int(match[3])), None)
            if hook is None:
                return 404, {"message": "Not Found", "documentation_url": DOCS}, {}
            if method == "DELETE":
                hooks.remove(hook)
                return 204, None, {}
            return 200, hook, {}
        if method == "GET":
            return self._page(key, hooks, parse_qs(split.query))
        if method != "POST":
            return 404, {"message": "Not Found", "documentation_url": DOCS}, {}
        return (*self._create(key, hooks, body or {}), {})

    def _page(self, key: str, hooks: list[dict[str, Any]], query: dict[str, list[str]]
              ) -> tuple[int, Any, dict[str, str]]:
        per_page = min(100, int(query.get("per_page", ["30"])[0]))
        page = max(1, int(query.get("page", ["1"])[0]))
        last = max(1, -(-len(hooks) // per_page))
        headers = {}
        if page < last:
            url = f"{self.base}/github/repos/{key}/hooks?per_page={per_page}"
            headers["Link"] = (f'<{url}&page={page + 1}>; rel="next", '
                               f'<{url}&page={last}>; rel="last"')
        return 200, hooks[(page - 1) * per_page:page * per_page], headers

    def _create(self, key: str, hooks: list[dict[str, Any]], body: dict[str, Any]
                ) -> tuple[int, Any]:
        config = body.get("config") or {}
        url = str(config.get("url") or "")
        if body.get("name", "web") != "web":
            return _invalid("Name must be 'web'")
        if not url:
            return _invalid("Config must have a url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return _invalid("Url is not a valid URL")
        if _unreachable_host(parts.hostname):
            return _invalid(f"url is not supported because it isn't reachable over the "
                            f"public Internet ({parts.hostname})")
        content_type = config.get("content_type", "form")
        if content_type not in ("json", "form"):
            return _invalid("Content type is not included in the list")
        events = body.get("events", ["push"])
        if not isinstance(events, list) or any(e not in EVENTS for e in events):
            return _invalid("Invalid event")
        if any(h["config"]["url"] == url for h in hooks):
            return _invalid("Hook already exists on this repository")
        hook_id = next(self.ids)
        api = f"{self.base}/github/repos/{key}/hooks/{hook_id}"
        hook: dict[str, Any] = {
            "type": "Repository", "id": hook_id, "name": "web",
            "active": bool(body.get("active", True)), "events": events,
            "config": {"content_type": content_type,
                       "insecure_ssl": str(config.get("insecure_ssl", "0")), "url": url},
            "updated_at": "2026-12-04T20:00:00Z", "created_at": "2026-12-04T20:00:00Z",
            "url": api, "test_url": f"{api}/test", "ping_url": f"{api}/pings",
            "deliveries_url": f"{api}/deliveries",
            "last_response": {"code": None, "status": "unused", "message": None}}
        if config.get("secret"):
            hook["config"]["secret"] = "********"
            self.secrets[hook_id] = str(config["secret"])
        hooks.append(hook)
        return 201, hook
