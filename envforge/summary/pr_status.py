"""An environment's state on its pull request, through the provider's REST API.

GitHub: a Deployment per (environment, commit), transient and not production, whose statuses
follow the run (``POST /repos/{o}/{r}/deployments``, ``.../deployments/{id}/statuses``:
in_progress, then success with the environment URL or failure; inactive when the environment
is destroyed, which GitHub shows as "destroyed"). GitHub's ``auto_inactive`` leaves transient
environments alone, so a success marks the environment's earlier successful deployments
inactive itself. Plus a commit status with context
``envforge/<environment>`` (``POST /repos/{o}/{r}/statuses/{sha}``: pending, success, failure).

GitLab: the project's environment of that name (``/projects/:id/environments``: created, its
``external_url`` set on success, stopped on destroy) plus a commit status named
``envforge/<environment>`` (``POST /projects/:id/statuses/:sha``: running, success, failed).

The token comes from a GitProviderToken block, resolved through envforge.connections; every
call goes through the one provider client (envforge.capabilities.providers).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import quote

from envforge.errors import ProviderStatusError
from envforge.summary.comments import ProviderSession, PullRequestRef, pull_request_from_source

EnvironmentState = Literal["in_progress", "success", "failure", "inactive"]
#: A commit status per state (none on destroy: the commit's outcome does not change).
GITHUB_COMMIT_STATES = {"in_progress": "pending", "success": "success", "failure": "failure"}
GITLAB_COMMIT_STATES = {"in_progress": "running", "success": "success", "failure": "failed"}
DESCRIPTIONS = {"in_progress": "envforge is creating the environment",
                "success": "the environment is ready", "failure": "the environment failed "
                "and was rolled back", "inactive": "the environment was destroyed"}
#: Deployments of one environment marked inactive on destroy (one page, newest first).
MAX_DEPLOYMENTS = 100


@dataclass(frozen=True)
class StatusTarget:
    """What the status is about: a pull request's environment at a commit (or branch)."""

    pull_request: PullRequestRef
    environment: str
    commit: str | None = None
    branch: str | None = None

    @classmethod
    def from_source(cls, provider: str, environment: str, source: Mapping[str, Any]
                    ) -> StatusTarget:
        """The target of an environment's ``source`` (repository, pullRequest, commit)."""
        return cls(pull_request_from_source(provider, source), environment,
                   source.get("commit") or None, source.get("branch") or None)

    @property
    def context(self) -> str:
        """The commit status's context (GitHub) or name (GitLab)."""
        return f"envforge/{self.environment}"


@dataclass
class StatusReport:
    """What was set on the provider (ids, for tests and logs)."""

    state: EnvironmentState
    deployments: list[int] = field(default_factory=list)
    commit_status: str | None = None
    environment_id: int | None = None


class PullRequestStatusReporter(ProviderSession):
    """Sets an environment's state on one provider (GitHub or GitLab)."""

    refused = ProviderStatusError

    def report(self, target: StatusTarget, state: EnvironmentState, url: str | None = None,
               log_url: str | None = None) -> StatusReport:
        """Set ``state`` (with the environment's ``url`` and the run's ``log_url``)."""
        if self.provider == "github":
            return self._github(target, state, url, log_url)
        return self._gitlab(target, state, url, log_url)

    # GitHub

    def _github(self, target: StatusTarget, state: EnvironmentState, url: str | None,
                log_url: str | None) -> StatusReport:
        repo = f"/repos/{target.pull_request.project}"
        report = StatusReport(state)
        if state == "inactive":
            report.deployments += self._github_deactivate(repo, target.environment, skip=None)
            return report
        ref = target.commit or target.branch
        if ref:
            found = self._github_deployments(repo, target.environment, target.commit)
            deployment_id = int(found[0]["id"]) if found else self._github_create(
                repo, target, ref)
            self._github_deployment_status(repo, deployment_id, state, url, log_url)
            report.deployments.append(deployment_id)
            if state == "success":  # GitHub's auto_inactive skips transient environments
                self._github_deactivate(repo, target.environment, skip=deployment_id,
                                        only_state="success")
        if target.commit:
            body: dict[str, Any] = {"state": GITHUB_COMMIT_STATES[state],
                                    "context": target.context,
                                    "description": DESCRIPTIONS[state]}
            if url or log_url:
                body["target_url"] = url or log_url
            self._send("POST", f"{repo}/statuses/{target.commit}", json=body)
            report.commit_status = body["state"]
        return report

    def _github_deactivate(self, repo: str, environment: str, skip: int | None,
                           only_state: str | None = None) -> list[int]:
        """Mark the environment's deployments inactive (those whose latest status is
        ``only_state``, or any but inactive); the ids marked."""
        marked = []
        for deployment in self._github_deployments(repo, environment, None):
            deployment_id = int(deployment["id"])
            if deployment_id == skip:
                continue
            path = f"{repo}/deployments/{deployment_id}/statuses"
            latest = self._send("GET", path, params={"per_page": 1})
            current = latest[0].get("state") if isinstance(latest, list) and latest else None
            if current == "inactive" or (only_state and current != only_state):
                continue
            self._github_deployment_status(repo, deployment_id, "inactive", None, None)
            marked.append(deployment_id)
        return marked

    def _github_deployments(self, repo: str, environment: str, sha: str | None
                            ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"environment": environment, "per_page": MAX_DEPLOYMENTS}
        if sha:
            params["sha"] = sha
        found = self._send("GET", f"{repo}/deployments", params=params)
        return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []

    def _github_create(self, repo: str, target: StatusTarget, ref: str) -> int:
        created = self._send("POST", f"{repo}/deployments", json={
            "ref": ref, "environment": target.environment, "auto_merge": False,
            "required_contexts": [], "transient_environment": True,
            "production_environment": False,
            "description": f"envforge environment {target.environment}",
        })
        return int(created["id"])

    def _github_deployment_status(self, repo: str, deployment_id: int,
                                  state: EnvironmentState, url: str | None,
                                  log_url: str | None) -> None:
        body: dict[str, Any] = {"state": state, "description": DESCRIPTIONS[state],
                                "auto_inactive": True}
        if url:
            body["environment_url"] = url
        if log_url:
            body["log_url"] = log_url
        self._send("POST", f"{repo}/deployments/{deployment_id}/statuses", json=body)

    # GitLab

    def _gitlab(self, target: StatusTarget, state: EnvironmentState, url: str | None,
                log_url: str | None) -> StatusReport:
        project = f"/projects/{quote(target.pull_request.project, safe='')}"
        report = StatusReport(state)
        existing = self._send("GET", f"{project}/environments",
                              params={"name": target.environment})
        current = next((e for e in existing if isinstance(e, dict)
                        and e.get("name") == target.environment), None) \
            if isinstance(existing, list) else None
        if state == "inactive":
            if current is not None:
                self._send("POST", f"{project}/environments/{current['id']}/stop")
                report.environment_id = int(current["id"])
            return report
        if current is None:
            body: dict[str, Any] = {"name": target.environment, "tier": "development"}
            if url:
                body["external_url"] = url
            current = self._send("POST", f"{project}/environments", json=body)
        elif url and current.get("external_url") != url:
            self._send("PUT", f"{project}/environments/{current['id']}",
                       json={"external_url": url})
        report.environment_id = int(current["id"])
        if target.commit:
            status: dict[str, Any] = {"state": GITLAB_COMMIT_STATES[state],
                                      "name": target.context,
                                      "description": DESCRIPTIONS[state]}
            if target.branch:
                status["ref"] = target.branch
            if url or log_url:
                status["target_url"] = url or log_url
            self._send("POST", f"{project}/statuses/{target.commit}", json=status)
            report.commit_status = status["state"]
        return report

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, path, **kwargs)


class StatusReporterSource(Protocol):
    """What this module needs of the connection source it is handed (structurally
    :class:`envforge.connections.ConnectionSource`): a status reporter for a token block."""

    def pull_request_status(self, name: str) -> AbstractContextManager[PullRequestStatusReporter]:
        """A status reporter using the ``GitProviderToken`` block ``name``, closed on exit."""
        ...


def report_environment_state(token_block: str, environment: str, source: Mapping[str, Any],
                             state: EnvironmentState, url: str | None = None,
                             log_url: str | None = None, *,
                             connections: StatusReporterSource) -> StatusReport:
    """Set ``state`` on the environment's pull request, with the token of the GitProviderToken
    block ``token_block`` (resolved by ``connections``)."""
    with connections.pull_request_status(token_block) as reporter:
        target = StatusTarget.from_source(reporter.provider, environment, source)
        return reporter.report(target, state, url, log_url)
