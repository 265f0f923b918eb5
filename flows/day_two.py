"""Prefect flows for day two: upgrade environments to their template's current version, put
environments to sleep and wake them, and the scheduled sleep/wake by environment type.

Orchestration only (envforge.environments.upgrade, envforge.environments.sleep,
envforge.environments.sleep_schedule decide and commit). Each environment is changed under
its lock (flows.environments.environment_lock), one at a time; one environment's failure is
logged and reported, and the others go on. Every upgraded, slept or woken environment gets a
summary artifact (and, for a pull request with ENVFORGE_PR_COMMENT_BLOCK set, the PR comment
says what changed).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from envforge.environments.feedback import publish_summary
from envforge.environments.sleep import SleepResult, sleep_environment, wake_environment
from envforge.environments.sleep_schedule import decide_sleep, load_policy, parse_policy
from envforge.environments.upgrade import (
    UpgradeOutcome,
    UpgradeReport,
    choose_environments,
    upgrade_environment,
)
from envforge.errors import EnvforgeError
from envforge.gitops.record import EnvironmentRecord
from envforge.gitops.repository import open_store
from envforge.services import Services
from envforge.summary.model import EnvironmentSummary
from envforge.templating.loader import TemplateCatalog
from flows.environments import environment_lock
from flows.services import flow_services


def _run_id() -> str:
    return str(flow_run.id or "local")


@flow(name="upgrade-environments", persist_result=False)
def upgrade_environments(names: list[str] | None = None, template: str | None = None,
                         all_environments: bool = False, dry_run: bool = False,
                         parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Re-render environments with the current version of their template: a diff per
    environment, one commit each, unchanged ones skipped, failures reported.

    Args:
        names: the environments to upgrade.
        template: only environments made from this template (alone: every one of them).
        all_environments: every environment.
        dry_run: compute and report the diffs, commit nothing.
        parameters: values for every chosen environment (e.g. a newly required parameter).
    """
    logger = get_run_logger()
    services = flow_services()
    catalog = TemplateCatalog(services.settings.paths.templates_path)
    with open_store(services=services) as store:
        chosen, missing = choose_environments(store.list(), names or [], template,
                                              all_environments)
    report = UpgradeReport([UpgradeOutcome(
        name, "failed", error=f"cannot upgrade environment {name!r}: it does not exist in "
        "the GitOps repository") for name in missing])
    for record in chosen:
        with environment_lock(record.name, services), open_store(services=services) as store:
            outcome = upgrade_environment(store, record, catalog, dry_run, _run_id(),
                                         parameters, services)
        report.outcomes.append(outcome)
        if outcome.status == "failed":
            logger.error("%s: %s", outcome.name, outcome.error)
        else:
            logger.info("%s: %s (%s -> %s) %s", outcome.name, outcome.status,
                        outcome.from_version, outcome.to_version, outcome.commit or "")
        if outcome.status in ("upgraded", "failed"):
            _upgrade_summary(services, record, outcome)
    for outcome in report.outcomes[:len(missing)]:
        logger.error("%s", outcome.error)
    return report.to_dict()


def _upgrade_summary(services: Services, record: EnvironmentRecord, outcome: UpgradeOutcome
                     ) -> None:
    if outcome.status == "failed":
        message = f"Upgrade failed; nothing committed: {outcome.error}"
    else:
        message = (f"Upgraded from template {outcome.template} {outcome.from_version} to "
                   f"{outcome.to_version} (commit {(outcome.commit or '')[:12]}): "
                   f"{', '.join(outcome.files)}")
        if outcome.defaults:
            message += f"; new parameters took their default: {', '.join(outcome.defaults)}"
        if outcome.rebuilt:
            message += f"; built again: {'; '.join(outcome.rebuilt)}"
    diagnostics = [{"title": "GitOps diff", "text": outcome.diff}] if outcome.diff else []
    _summary(services, record, "completed" if outcome.status != "failed" else "failed",
             "upgrade", message, diagnostics)


@flow(name="sleep-environment", persist_result=False)
def sleep_environment_flow(name: str, reason: str = "asked") -> dict[str, Any]:
    """Scale an environment's workloads to zero through Git (database and Secrets stay);
    already asleep: nothing committed.

    Args:
        name: the environment.
        reason: why (recorded in the environment and shown by env list/show).
    """
    services = flow_services()
    with environment_lock(name, services), open_store(services=services) as store:
        result = sleep_environment(store, name, reason, _run_id())
    return _sleep_report(services, result)


@flow(name="wake-environment", persist_result=False)
def wake_environment_flow(name: str, reason: str = "asked") -> dict[str, Any]:
    """Restore a sleeping environment's workloads; already awake: nothing committed.

    Args:
        name: the environment.
        reason: why (in the commit message).
    """
    services = flow_services()
    with environment_lock(name, services), open_store(services=services) as store:
        result = wake_environment(store, name, reason, _run_id())
    return _sleep_report(services, result)


def _sleep_report(services: Services, result: SleepResult) -> dict[str, Any]:
    get_run_logger().info("%s", result.message)
    if result.commit:
        _summary(services, result.record, "asleep" if result.action == "sleep" else "completed",
                 result.action, result.message)
    sleeping = result.record.status.sleeping
    return {"name": result.name, "action": result.action, "commit": result.commit,
            "asleep": sleeping is not None,
            "since": sleeping.since.isoformat() if sleeping else None,
            "message": result.message}


@flow(name="sleep-idle-environments", persist_result=False)
def sleep_idle_environments(policy: dict[str, Any] | None = None,
                            dry_run: bool = False) -> dict[str, Any]:
    """By each environment type's policy: put environments to sleep in quiet hours or after
    N hours with no deployment, and wake those the schedule put to sleep when quiet hours end.

    Args:
        policy: rules per environment type (default ENVFORGE_SLEEP_POLICY or the built-in
            one; see docs/lifecycle.md).
        dry_run: decide and report, change nothing.
    """
    logger = get_run_logger()
    services = flow_services()
    rules = (parse_policy(policy, "policy") if policy is not None
             else load_policy(services.settings.lifecycle.sleep_policy))
    with open_store(services=services) as store:
        decisions = decide_sleep(store.list(), rules)
    done: dict[str, list[str]] = {"slept": [], "woken": [], "failed": []}
    for decision in decisions:
        if decision.action == "keep":
            continue
        logger.info("%s %s: %s", decision.action, decision.name, decision.reason)
        if dry_run:
            continue
        change = sleep_environment if decision.action == "sleep" else wake_environment
        try:
            with (environment_lock(decision.name, services),
                  open_store(services=services) as store):
                result = change(store, decision.name, decision.reason, _run_id())
        except EnvforgeError as e:  # one environment's failure must not stop the others
            logger.error("could not %s %s: %s", decision.action, decision.name, e)
            done["failed"].append(decision.name)
            continue
        if result.commit:
            done["slept" if decision.action == "sleep" else "woken"].append(decision.name)
    return {"decisions": [d.__dict__ for d in decisions], **done}


def _summary(services: Services, record: EnvironmentRecord, status: str, operation: str,
             message: str, diagnostics: list[dict[str, str]] | None = None) -> None:
    """An artifact per environment and, for a pull request, the PR comment; failing to
    store either is logged, not fatal."""
    source = record.spec.source.model_dump(exclude_none=True)
    try:
        url = flow_run.ui_url
        summary = EnvironmentSummary.from_dict({
            "name": record.name, "status": status, "operation": operation,
            "template": record.spec.template, "url": record.status.url, "source": source,
            "message": message, "diagnostics": diagnostics or [],
            "run_url": str(url) if url else None})
    except EnvforgeError as e:
        get_run_logger().warning("%s", e)
        return
    publish_summary(services, summary, source, get_run_logger())
