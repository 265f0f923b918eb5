"""What an environment run reports: a markdown summary artifact per run (linking to the fleet
table, envforge.summary.fleet, which every run republishes), the same summary as a comment on
the environment's pull request, and the environment's state on that pull request (commit
status, GitHub Deployment or GitLab environment).

The pull request parts happen only when the settings name a GitProviderToken block
(ENVFORGE_PR_COMMENT_BLOCK; ENVFORGE_PR_STATUS_BLOCK, default the comment block) and the run
belongs to a pull request. A failure to report is logged, never raised: the environment itself
is what the run was for.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from envforge.errors import EnvforgeError
from envforge.services import Services
from envforge.summary.artifact import publish_summary_artifact
from envforge.summary.comments import post_summary_comment
from envforge.summary.fleet import refresh_fleet, with_fleet_link
from envforge.summary.model import (
    EnvironmentSummary,
    database_from_output,
    image_from_output,
)
from envforge.summary.pr_status import EnvironmentState, report_environment_state
from envforge.summary.render import render_summary

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


def publish_summary(services: Services, summary: EnvironmentSummary, source: Mapping[str, Any],
                    logger: Logger) -> None:
    """Store ``summary`` as the run's artifact and, for a pull request, post it as the PR
    comment (editing the earlier one)."""
    try:
        publish_summary_artifact(with_fleet_link(summary))
        block = services.settings.lifecycle.pr_comment_block
        if block and source.get("pullRequest"):
            post_summary_comment(render_summary(summary), summary.name, source, block,
                                 connections=services.connections)
    except EnvforgeError as e:
        logger.warning("%s", e)
    refresh_fleet(services, logger)  # the envforge-fleet table: every environment, as of now


def summarise_run(services: Services, name: str, result: dict[str, Any], status: str,
                  operation: str, logger: Logger, source: Mapping[str, Any] | None = None,
                  run_url: str | None = None, **extra: Any) -> None:
    """The summary of one lifecycle run (its step reports and what ``extra`` adds: url,
    message, diagnostics, images, databases), published as :func:`publish_summary` does."""
    try:
        summary = EnvironmentSummary.from_run_result(
            name, result, status=status, operation=operation, source=dict(source or {}),
            run_url=run_url, **extra)
    except EnvforgeError as e:
        logger.warning("%s", e)
        return
    publish_summary(services, summary, source or {}, logger)


def report_pull_request_state(services: Services, name: str, source: Mapping[str, Any],
                              state: EnvironmentState, logger: Logger, url: str | None = None,
                              log_url: str | None = None) -> None:
    """The environment's state on its pull request, when a status block is configured."""
    block = services.settings.lifecycle.status_block
    if not block or not source.get("pullRequest"):
        return
    try:
        report_environment_state(block, name, source, state, url=url, log_url=log_url,
                                 connections=services.connections)
    except EnvforgeError as e:
        logger.warning("pull request status %s of %s not set: %s", state, name, e)


def made_by(steps: list[Any], outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Images (with digests) and databases (strategy, rows) the run's steps made."""
    images, databases = [], []
    for step in steps:
        output = outputs.get(step.id)
        if output is None:
            continue  # skipped
        if step.action == "image:build":
            images.append(image_from_output(dict(output)))
        elif step.action in ("db:seed", "db:restore", "db:clone"):
            databases.append(database_from_output(dict(output), step.action.split(":")[1]))
    return {"images": images, "databases": databases}
