"""``argocd:wait``: wait until Argo CD reports the environment's Application Synced and
Healthy, its Deployments rolled out and no pod failing; output the sync and health status, the
URL and how many pods are ready.

Nothing to roll back (it only reads). Its errors: EnvironmentNotHealthyError at the timeout,
with the failing pods' events and log tails (permanent: the timeout is the retry budget and the
run should roll back), ClusterConnectionError when the API server does not answer (temporary,
so Prefect's retries apply; the action sets ``retries = 1``).
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.cluster.client import open_cluster
from envforge.cluster.diagnose import DiagnosisLimits
from envforge.cluster.status import EnvironmentHealth
from envforge.cluster.wait import WaitPolicy, WaitTarget, wait_until_healthy
from envforge.errors import ActionError
from envforge.gitops.naming import check_environment_name
from envforge.services import require_connections
from envforge.settings import load_settings


class ArgoCDWaitInput(ActionInput):
    environment: str | None = Field(
        None, description="Environment (= Argo CD Application) name; default environment.name.")
    namespace: str | None = Field(
        None, description="Namespace of its workloads; default environment.namespace, else the "
        "environment name.")
    timeoutSeconds: float = Field(600, gt=0, le=6 * 3600,
                                  description="How long to wait before failing.")
    pollSeconds: float = Field(2, gt=0, le=60, description="First poll interval (backs off).")
    revision: str | None = Field(
        None, description="Git commit the Application must have synced (e.g. publish:gitops's "
        "commitHash); default: any.")
    url: str | None = Field(None, description="The environment's URL; default: its Ingress.")
    argocdNamespace: str | None = Field(
        None, description="Where Applications live; default ENVFORGE_ARGOCD_NAMESPACE (argocd).")
    clusterBlock: str | None = Field(
        None, description="KubernetesCluster block; default KUBECONFIG or in-cluster.")
    failAfterFailingSeconds: float | None = Field(
        None, gt=0, description="Fail early once Degraded or a pod has been crash-looping / "
        "unable to pull its image for this long; default: wait the whole timeout.")
    logLines: int = Field(20, ge=0, le=500, description="Log lines per failing container.")


class ArgoCDWaitOutput(ActionOutput):
    sync: str = Field(description="status.sync.status, e.g. Synced")
    health: str = Field(description="status.health.status, e.g. Healthy")
    url: str = Field(description="Where the environment is reachable.")
    podsReady: str = Field(description="ready/total pods, e.g. 2/2")
    revision: str = Field("", description="The Git revision Argo CD synced.")
    waitedSeconds: float = 0.0


class ArgoCDWait(Action[ArgoCDWaitInput, ArgoCDWaitOutput]):
    id = "argocd:wait"
    description = ("Wait until Argo CD reports the environment Synced and Healthy and its "
                   "Deployments rolled out; on timeout, fail with the pods' events and logs.")
    input_model = ArgoCDWaitInput
    output_model = ArgoCDWaitOutput
    supports_dry_run = True
    retries = 1
    retry_delay_seconds = 10.0
    examples = [{
        "id": "wait", "name": "Wait until the environment is healthy", "action": "argocd:wait",
        "input": {"timeoutSeconds": 600,
                  "revision": "${{ steps.environment.output.commitHash }}"}}]

    def run(self, ctx: ActionContext, params: ArgoCDWaitInput) -> ArgoCDWaitOutput:
        target = self._target(ctx, params)
        policy = WaitPolicy(timeout_seconds=params.timeoutSeconds,
                            poll_seconds=params.pollSeconds,
                            fail_after_failing_seconds=params.failAfterFailingSeconds,
                            diagnosis=DiagnosisLimits(log_lines=params.logLines))

        def progress(health: EnvironmentHealth) -> None:
            ctx.logger.info("environment %s: waiting: %s", target.environment,
                            "; ".join(health.problems()) or "no problem reported")

        ctx.logger.info("waiting up to %.0fs for environment %s (Argo CD %s/%s, namespace %s)",
                        params.timeoutSeconds, target.environment, target.argocd_namespace,
                        target.environment, target.namespace)
        started = time.monotonic()
        connections = require_connections(ctx.services, f"step {ctx.step_id!r} (argocd:wait)")
        with open_cluster(connections, params.clusterBlock) as reader:
            health = wait_until_healthy(reader, target, policy, on_change=progress)
        waited = round(time.monotonic() - started, 1)
        app = health.application
        ctx.logger.info("environment %s is %s/%s, %s pods ready, %s (after %.1fs)",
                        target.environment, app.sync, app.health, health.pods_ready,
                        health.url or "no URL", waited)
        return ArgoCDWaitOutput(sync=app.sync, health=app.health, url=health.url,
                                podsReady=health.pods_ready, revision=app.revision,
                                waitedSeconds=waited)

    def dry_run(self, ctx: ActionContext, params: ArgoCDWaitInput) -> ArgoCDWaitOutput:
        """The plan: what would be waited for, without touching the cluster."""
        target = self._target(ctx, params)
        ctx.logger.info(
            "dry run: would wait up to %.0fs for Argo CD Application %s/%s to be Synced and "
            "Healthy%s and the Deployments in namespace %s to roll out (cluster: %s)",
            params.timeoutSeconds, target.argocd_namespace, target.environment,
            f" at revision {target.expected_revision[:12]}" if target.expected_revision else "",
            target.namespace, params.clusterBlock or "KUBECONFIG / in-cluster")
        return ArgoCDWaitOutput(sync="dry-run", health="dry-run", url=target.url,
                                podsReady="0/0", revision=target.expected_revision)

    def check(self, params: ArgoCDWaitInput, template_dir: Path) -> list[str]:
        problems = []
        if params.pollSeconds > params.timeoutSeconds:
            problems.append("pollSeconds is longer than timeoutSeconds: it would poll once")
        return problems

    def _target(self, ctx: ActionContext, params: ArgoCDWaitInput) -> WaitTarget:
        name = params.environment or ctx.environment.get("name")
        if not name:
            raise ActionError(
                f"step {ctx.step_id!r} (argocd:wait): no environment name; set input."
                "environment, or run the template for an environment ('envforge env create')")
        name = str(name)
        check_environment_name(name)
        namespace = params.namespace or ctx.environment.get("namespace") or name
        url = params.url or ""
        if not url and ctx.environment.get("host"):
            url = f"https://{ctx.environment['host']}"
        settings = ctx.services.settings if ctx.services else load_settings()
        argocd = params.argocdNamespace or settings.gitops.argocd_namespace
        return WaitTarget(environment=name, namespace=str(namespace), argocd_namespace=argocd,
                          url=url, expected_revision=params.revision or "")


ACTIONS = [ArgoCDWait]
