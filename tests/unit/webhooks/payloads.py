"""Webhook payloads shaped like GitHub's and GitLab's (only the fields envforge reads, plus
a few it must ignore), for unit and integration tests."""

from __future__ import annotations

import json
from typing import Any

from envforge.webhooks.verify import github_signature


def github_pull_request(action: str = "opened", number: int = 42, sha: str = "a" * 40,
                        repository: str = "acme/orders-api", branch: str = "feature/x",
                        merged: bool = False, closed_at: str | None = None,
                        updated_at: str = "2026-11-24T02:00:00Z",
                        head_repository: str | None = None) -> dict[str, Any]:
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "html_url": f"https://github.com/{repository}/pull/{number}",
            "state": "closed" if action == "closed" else "open",
            "merged": merged,
            "closed_at": closed_at,
            "updated_at": updated_at,
            "head": {"sha": sha, "ref": branch,
                     "repo": {"full_name": head_repository or repository}},
            "base": {"ref": "main"},
        },
        "repository": {"full_name": repository,
                       "clone_url": f"https://github.com/{repository}.git"},
        "sender": {"login": "octocat"},
    }


def gitlab_merge_request(action: str = "open", iid: int = 7, sha: str = "b" * 40,
                         project: str = "group/sub/web", branch: str = "feature/y",
                         oldrev: str | None = None, project_id: int = 99,
                         updated_at: str = "2026-11-24 02:00:00 UTC",
                         source_project_id: int | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "source_project_id": source_project_id or project_id, "target_project_id": project_id,
        "iid": iid, "action": action, "source_branch": branch, "target_branch": "main",
        "last_commit": {"id": sha}, "url": f"https://gitlab.example/{project}/-/merge_requests/{iid}",
        "updated_at": updated_at,
    }
    if oldrev:
        attrs["oldrev"] = oldrev
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "project": {"id": project_id, "path_with_namespace": project,
                    "git_http_url": f"https://gitlab.example/{project}.git"},
        "object_attributes": attrs,
    }


def signed_github(payload: dict[str, Any], secret: str,
                  event: str = "pull_request") -> tuple[bytes, dict[str, str]]:
    """Body and headers of a GitHub delivery signed with ``secret``."""
    body = json.dumps(payload).encode()
    return body, {"X-GitHub-Event": event, "X-Hub-Signature-256": github_signature(body, secret),
                  "Content-Type": "application/json", "X-GitHub-Delivery": "d-1"}


def gitlab_delivery(payload: dict[str, Any], token: str | None) -> tuple[bytes, dict[str, str]]:
    headers = {"X-Gitlab-Event": "Merge Request Hook", "Content-Type": "application/json"}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return json.dumps(payload).encode(), headers
