"""Waiting until an environment is up: Argo CD reports its Application Synced and Healthy (at
the expected Git revision or a later commit containing it, when one is given), every Deployment
has rolled out, and no pod is failing.

Argo CD re-reads Git every few minutes by itself; the wait does not depend on that: at its start
and every ``refresh_every_seconds`` while Argo CD is not there yet, it asks for a refresh of the
environment's Application and of the app-of-apps that made it (the ``argocd.argoproj.io/refresh``
annotation, envforge.gitops.refresh). A synced revision that is not the expected commit is
accepted when it descends from it (envforge.gitops.ancestry): on a busy GitOps repository Argo
CD often syncs a later head that still contains envforge's change.

Bounded polling rather than a watch: the state spans four kinds of object (Application,
Deployments, pods, and the Application lives in another namespace), one snapshot every few
seconds is cheap, and a poll loop has an obvious bound in time and in requests. A connection
blip is tolerated (up to ``max_connection_failures`` in a row); at the deadline (or once it has
been failing for ``fail_after_failing_seconds``) the error names what is unhealthy and carries
the diagnosis.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from envforge.cluster.client import ClusterReader, open_cluster
from envforge.cluster.diagnose import DiagnosisLimits, diagnose
from envforge.cluster.status import EnvironmentHealth, read_environment_health
from envforge.connections import ConnectionSource
from envforge.errors import (
    ClusterConnectionError,
    EnvironmentNotHealthyError,
    EnvironmentNotPrunedError,
)
from envforge.gitops.refresh import annotate_refresh
from envforge.secrets.redaction import scrub

logger = logging.getLogger("envforge.cluster.wait")


@dataclass(frozen=True)
class WaitTarget:
    """What to wait for and where to look."""

    environment: str
    namespace: str
    argocd_namespace: str = "argocd"
    url: str = ""
    expected_revision: str = ""


@dataclass(frozen=True)
class WaitPolicy:
    """How long and how often: polls start at ``poll_seconds`` and back off by half up to
    ``max_poll_seconds``; never more than timeout / poll_seconds + 1 polls."""

    timeout_seconds: float = 600.0
    poll_seconds: float = 2.0
    max_poll_seconds: float = 10.0
    max_connection_failures: int = 3
    #: Give up early once the environment has been failing (Degraded, or a pod crash-looping
    #: or unable to pull its image) for this long; None waits the whole timeout.
    fail_after_failing_seconds: float | None = None
    diagnosis: DiagnosisLimits = field(default_factory=DiagnosisLimits)
    #: ask Argo CD to refresh again this often while it has not synced what is awaited
    refresh_every_seconds: float = 20.0


#: (repository URL, branch, later, earlier) -> whether ``later`` contains ``earlier``
Contains = Callable[[str, str, str, str], bool]
TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"


def _git_contains(repo_url: str, branch: str, later: str, earlier: str) -> bool:
    from envforge.gitops.ancestry import commit_contains

    return commit_contains(repo_url, branch, later, earlier)


def _parent_application(app: dict[str, Any] | None) -> str | None:
    """The app-of-apps that created ``app``: Argo CD's tracking id on it names its owner
    (``<root>:argoproj.io/Application:<namespace>/<name>``)."""
    tracking = ((app or {}).get("metadata") or {}).get("annotations", {}).get(
        TRACKING_ANNOTATION, "")
    owner = str(tracking).partition(":")[0]
    return owner or None


def request_refresh(reader: ClusterReader, target: WaitTarget) -> list[str]:
    """Ask Argo CD to compare the environment's Application and its app-of-apps with Git now.
    Best effort: a refusal is logged, the wait goes on (Argo CD polls by itself too)."""
    try:
        app = reader.application(target.argocd_namespace, target.environment)
        names = [n for n in (target.environment if app is not None else None,
                             _parent_application(app)) if n]
        return annotate_refresh(reader.custom, target.argocd_namespace, names)
    except Exception as e:  # never fails the wait
        logger.debug("environment %s: refresh request failed: %s", target.environment, e)
        return []


def _accept_later_revision(reader: ClusterReader, health: EnvironmentHealth,
                           target: WaitTarget, contains: Contains,
                           known: dict[tuple[str, str], bool]) -> EnvironmentHealth:
    """``health`` judged against Argo CD's synced revision when that one contains the
    expected commit (a later head of the branch)."""
    want, synced = health.expected_revision, health.application.revision
    if not want or health.revision_ok or not synced or health.application.sync != "Synced":
        return health
    if (synced, want) not in known:
        app = reader.application(target.argocd_namespace, target.environment) or {}
        source = (app.get("spec") or {}).get("source") or {}
        try:
            known[(synced, want)] = bool(source.get("repoURL")) and contains(
                str(source["repoURL"]), str(source.get("targetRevision") or "HEAD"),
                synced, want)
        except Exception as e:  # unknown: keep waiting for the exact commit
            logger.warning("environment %s: could not tell whether %s contains %s: %s",
                           target.environment, synced[:12], want[:12], e)
            return health
    if known[(synced, want)]:
        logger.info("environment %s: Argo CD synced %s, which contains %s", target.environment,
                    synced[:12], want[:12])
        return dataclasses.replace(health, expected_revision=synced)
    return health


def wait_until_healthy(
    reader: ClusterReader,
    target: WaitTarget,
    policy: WaitPolicy | None = None,
    on_change: Callable[[EnvironmentHealth], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    contains: Contains = _git_contains,
) -> EnvironmentHealth:
    """The first healthy snapshot; raises EnvironmentNotHealthyError at the deadline, or
    ClusterConnectionError after several failed reads in a row. ``on_change`` sees each
    snapshot whose problems differ from the previous one (progress for logs). ``contains``
    says whether a synced revision contains the expected one (default: asks Git)."""
    policy = policy or WaitPolicy()
    started = clock()
    deadline = started + policy.timeout_seconds
    interval = policy.poll_seconds
    failures = 0
    last: EnvironmentHealth | None = None
    last_problems: list[str] | None = None
    failing_since: float | None = None
    known: dict[tuple[str, str], bool] = {}
    refreshed: float | None = None  # the first refresh: as soon as it is not there yet
    while True:
        try:
            health = read_environment_health(
                reader, target.environment, target.namespace, target.argocd_namespace,
                target.url, target.expected_revision)
            health = _accept_later_revision(reader, health, target, contains, known)
            failures = 0
        except ClusterConnectionError as e:
            failures += 1
            if failures >= policy.max_connection_failures or clock() >= deadline:
                raise ClusterConnectionError(
                    f"waiting for environment {target.environment!r}: {failures} read(s) in "
                    f"a row failed; last: {e}") from e
            logger.warning("environment %s: cluster read failed (%s); retrying",
                           target.environment, e)
            health = None
        if health is not None:
            if health.healthy:
                return health
            if not (health.application.healthy and health.revision_ok) and (
                    refreshed is None or clock() - refreshed >= policy.refresh_every_seconds):
                request_refresh(reader, target)
                refreshed = clock()
            problems = health.problems()
            if problems != last_problems and on_change is not None:
                on_change(health)
            last, last_problems = health, problems
            if _failing(health):
                failing_since = clock() if failing_since is None else failing_since
                limit = policy.fail_after_failing_seconds
                if limit is not None and clock() - failing_since >= limit:
                    break
            else:
                failing_since = None
        left = deadline - clock()
        if left <= 0:
            break
        sleep(min(interval, left))
        interval = min(policy.max_poll_seconds, interval * 1.5)
    waited = clock() - started
    if last is None:  # every read failed, but fewer than the limit in a row: cannot happen
        raise ClusterConnectionError(f"environment {target.environment!r}: no state read")
    summary = diagnose(reader, last, policy.diagnosis, include_problems=False)
    problems = [scrub(p) for p in last.problems()] or ["not Synced and Healthy"]
    raise EnvironmentNotHealthyError(target.environment, waited, problems, summary)


def wait_for_environment(
    environment: str,
    namespace: str | None = None,
    *,
    timeout_seconds: float = 600.0,
    revision: str = "",
    url: str = "",
    cluster_block: str | None = None,
    argocd_namespace: str | None = None,
    fail_after_failing_seconds: float | None = None,
    on_change: Callable[[EnvironmentHealth], None] | None = None,
    connections: ConnectionSource,
) -> EnvironmentHealth:
    """For flows: open the cluster (a KubernetesCluster block, else KUBECONFIG/in-cluster) and
    wait; the namespace defaults to the environment's name, Argo CD's namespace to
    ENVFORGE_ARGOCD_NAMESPACE."""
    from envforge.gitops.settings import load_gitops_settings

    target = WaitTarget(environment=environment, namespace=namespace or environment,
                        argocd_namespace=argocd_namespace
                        or load_gitops_settings().argocd_namespace,
                        url=url, expected_revision=revision)
    policy = WaitPolicy(timeout_seconds=timeout_seconds,
                        fail_after_failing_seconds=fail_after_failing_seconds)
    with open_cluster(connections, cluster_block) as reader:
        return wait_until_healthy(reader, target, policy, on_change=on_change)


def wait_for_environment_pruned(environment: str, namespace: str | None = None, *,
                                timeout_seconds: float = 600.0,
                                cluster_block: str | None = None,
                                connections: ConnectionSource) -> float:
    """For the destroy flow: open the cluster and wait until the environment is pruned."""
    from envforge.gitops.settings import load_gitops_settings

    target = WaitTarget(environment=environment, namespace=namespace or environment,
                        argocd_namespace=load_gitops_settings().argocd_namespace)
    with open_cluster(connections, cluster_block) as reader:
        return wait_until_pruned(reader, target, WaitPolicy(timeout_seconds=timeout_seconds))


def wait_until_pruned(reader: ClusterReader, target: WaitTarget, policy: WaitPolicy | None = None,
                      clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> float:
    """After a destroy commit: wait until Argo CD has deleted the Application and its
    finalizer has pruned the namespace; returns the seconds waited. Raises
    EnvironmentNotPrunedError naming what is still there at the deadline."""
    policy = policy or WaitPolicy()
    started = clock()
    interval = policy.poll_seconds
    failures = 0
    remaining: list[str] = []
    refreshed: float | None = None
    while True:
        try:
            remaining = []
            if reader.application(target.argocd_namespace, target.environment) is not None:
                remaining.append(f"Argo CD application {target.argocd_namespace}/"
                                 f"{target.environment} still exists")
            if reader.namespace_exists(target.namespace):
                remaining.append(f"namespace {target.namespace} still exists")
            failures = 0
        except ClusterConnectionError:
            failures += 1
            if failures >= policy.max_connection_failures:
                raise
            remaining = remaining or ["state unknown: the API server did not answer"]
        if not remaining and failures == 0:
            return clock() - started
        if refreshed is None or clock() - refreshed >= policy.refresh_every_seconds:
            request_refresh(reader, target)  # the app-of-apps prunes the Application
            refreshed = clock()
        left = started + policy.timeout_seconds - clock()
        if left <= 0:
            raise EnvironmentNotPrunedError(target.environment, clock() - started, remaining)
        sleep(min(interval, left))
        interval = min(policy.max_poll_seconds, interval * 1.5)


def _failing(health: EnvironmentHealth) -> bool:
    """Failing rather than still on its way: Degraded, or a pod in a bad state."""
    return health.application.health == "Degraded" or any(p.failing for p in health.pods)
