"""Waiting until an environment is up: Argo CD reports its Application Synced and Healthy (at
the expected Git revision, when one is given), every Deployment has rolled out, and no pod is
failing.

Bounded polling rather than a watch: the state spans four kinds of object (Application,
Deployments, pods, and the Application lives in another namespace), one snapshot every few
seconds is cheap, and a poll loop has an obvious bound in time and in requests. A connection
blip is tolerated (up to ``max_connection_failures`` in a row); at the deadline (or once it has
been failing for ``fail_after_failing_seconds``) the error names what is unhealthy and carries
the diagnosis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from envforge.cluster.client import ClusterReader, open_cluster
from envforge.cluster.diagnose import DiagnosisLimits, diagnose
from envforge.cluster.status import EnvironmentHealth, read_environment_health
from envforge.errors import (
    ClusterConnectionError,
    EnvironmentNotHealthyError,
    EnvironmentNotPrunedError,
)
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


def wait_until_healthy(
    reader: ClusterReader,
    target: WaitTarget,
    policy: WaitPolicy | None = None,
    on_change: Callable[[EnvironmentHealth], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> EnvironmentHealth:
    """The first healthy snapshot; raises EnvironmentNotHealthyError at the deadline, or
    ClusterConnectionError after several failed reads in a row. ``on_change`` sees each
    snapshot whose problems differ from the previous one (progress for logs)."""
    policy = policy or WaitPolicy()
    started = clock()
    deadline = started + policy.timeout_seconds
    interval = policy.poll_seconds
    failures = 0
    last: EnvironmentHealth | None = None
    last_problems: list[str] | None = None
    failing_since: float | None = None
    while True:
        try:
            health = read_environment_health(
                reader, target.environment, target.namespace, target.argocd_namespace,
                target.url, target.expected_revision)
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
    with open_cluster(cluster_block) as reader:
        return wait_until_healthy(reader, target, policy, on_change=on_change)


def wait_for_environment_pruned(environment: str, namespace: str | None = None, *,
                                timeout_seconds: float = 600.0,
                                cluster_block: str | None = None) -> float:
    """For the destroy flow: open the cluster and wait until the environment is pruned."""
    from envforge.gitops.settings import load_gitops_settings

    target = WaitTarget(environment=environment, namespace=namespace or environment,
                        argocd_namespace=load_gitops_settings().argocd_namespace)
    with open_cluster(cluster_block) as reader:
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
        left = started + policy.timeout_seconds - clock()
        if left <= 0:
            raise EnvironmentNotPrunedError(target.environment, clock() - started, remaining)
        sleep(min(interval, left))
        interval = min(policy.max_poll_seconds, interval * 1.5)


def _failing(health: EnvironmentHealth) -> bool:
    """Failing rather than still on its way: Degraded, or a pod in a bad state."""
    return health.application.health == "Degraded" or any(p.failing for p in health.pods)
