"""What an environment looks like in its cluster: the Argo CD Application's sync, health and
operation state, each Deployment's rollout, and every pod's phase and container states.

Parsing works on plain dicts (as the API returns them), so it is unit-tested without a server;
:func:`read_environment_health` does the four reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from envforge.cluster.client import ClusterReader

#: Waiting reasons that mean a container will not start without a change (shown as problems).
BAD_WAITING_REASONS = frozenset({
    "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
    "ErrImageNeverPull", "PreCreateHookError", "PostStartHookError",
})


@dataclass(frozen=True)
class ApplicationState:
    """The Argo CD Application's status (``found`` False: Argo CD has not created it yet)."""

    name: str
    found: bool
    sync: str = "Unknown"
    health: str = "Unknown"
    health_message: str = ""
    revision: str = ""
    operation_phase: str = ""
    operation_message: str = ""

    @property
    def healthy(self) -> bool:
        return self.found and self.sync == "Synced" and self.health == "Healthy"

    def problem(self) -> str | None:
        if not self.found:
            return f"Argo CD application {self.name} does not exist yet"
        if self.healthy:
            return None
        text = f"Argo CD application {self.name} is {self.sync}/{self.health}"
        if self.health_message:
            text += f" ({self.health_message})"
        if self.operation_phase and self.operation_phase != "Succeeded":
            text += f", last sync {self.operation_phase}"
            if self.operation_message:
                text += f": {self.operation_message}"
        return text


@dataclass(frozen=True)
class RolloutState:
    """One Deployment's rollout, judged as `kubectl rollout status` does."""

    name: str
    desired: int
    updated: int
    ready: int
    available: int
    total: int
    generation: int
    observed_generation: int
    stalled_reason: str = ""
    selector: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return (self.observed_generation >= self.generation and self.updated >= self.desired
                and self.total <= self.updated and self.available >= self.updated
                and not self.stalled_reason)

    def problem(self) -> str | None:
        if self.complete:
            return None
        if self.observed_generation < self.generation:
            return f"deployment {self.name}: new spec not yet observed by its controller"
        text = (f"deployment {self.name}: {self.available}/{self.desired} available, "
                f"{self.updated} updated")
        if self.total > self.updated:
            text += f", {self.total - self.updated} old replica(s) still running"
        if self.stalled_reason:
            text += f" ({self.stalled_reason})"
        return text


@dataclass(frozen=True)
class ContainerState:
    name: str
    ready: bool
    state: str  # running | waiting | terminated | unknown
    reason: str = ""
    message: str = ""
    restarts: int = 0
    exit_code: int | None = None
    init: bool = False

    def describe(self) -> str:
        text = f"container {self.name} {self.state}"
        if self.reason:
            text += f" {self.reason}"
        if self.exit_code not in (None, 0):
            text += f" (exit code {self.exit_code})"
        if self.restarts:
            text += f" (restarts {self.restarts})"
        if self.message:
            text += f": {self.message}"
        return text


@dataclass(frozen=True)
class PodState:
    name: str
    phase: str
    ready: bool
    component: str
    containers: tuple[ContainerState, ...]
    labels: dict[str, str] = field(default_factory=dict)
    terminating: bool = False

    @property
    def settled(self) -> bool:
        """Done (a finished job's pod), on its way out, or running and ready."""
        return self.phase == "Succeeded" or self.terminating or (
            self.phase == "Running" and self.ready and not self.failing)

    @property
    def failing(self) -> bool:
        """Failed, or a container stuck in a bad state or restarting."""
        if self.phase == "Failed":
            return True
        return any(c.reason in BAD_WAITING_REASONS
                   or (c.state == "terminated" and c.exit_code not in (None, 0) and not c.init)
                   for c in self.containers)

    def problem(self) -> str | None:
        if self.settled:
            return None
        bad = [c.describe() for c in self.containers if not c.ready or c.reason]
        text = f"pod {self.name} {self.phase}" + (", not ready" if not self.ready else "")
        return text + (": " + "; ".join(bad) if bad else "")


@dataclass(frozen=True)
class EnvironmentHealth:
    """Everything `env status` shows and `argocd:wait` judges."""

    environment: str
    namespace: str
    application: ApplicationState
    rollouts: tuple[RolloutState, ...]
    pods: tuple[PodState, ...]
    url: str = ""
    expected_revision: str = ""

    @property
    def revision_ok(self) -> bool:
        want = self.expected_revision
        return not want or self.application.revision.startswith(want) or (
            bool(self.application.revision) and want.startswith(self.application.revision))

    @property
    def healthy(self) -> bool:
        return (self.application.healthy and self.revision_ok
                and all(r.complete for r in self.rollouts)
                and all(p.settled for p in self.pods))

    @property
    def pods_ready(self) -> str:
        running = [p for p in self.pods if p.phase != "Succeeded" and not p.terminating]
        return f"{sum(p.ready for p in running)}/{len(running)}"

    def problems(self) -> list[str]:
        found = [] if (problem := self.application.problem()) is None else [problem]
        if self.application.found and not self.revision_ok:
            found.append(f"Argo CD application {self.application.name} is at revision "
                         f"{self.application.revision[:12] or '(none)'}, waiting for "
                         f"{self.expected_revision[:12]}")
        found += [p for r in self.rollouts if (p := r.problem())]
        found += [p for pod in self.pods if (p := pod.problem())]
        return found

    def failing_pods(self) -> list[PodState]:
        """Pods to diagnose: failing first, then the others not settled."""
        unsettled = [p for p in self.pods if not p.settled]
        return sorted(unsettled, key=lambda p: not p.failing)


def parse_application(name: str, obj: dict[str, Any] | None) -> ApplicationState:
    if obj is None:
        return ApplicationState(name=name, found=False)
    status = obj.get("status") or {}
    sync = status.get("sync") or {}
    health = status.get("health") or {}
    operation = status.get("operationState") or {}
    return ApplicationState(
        name=name, found=True, sync=str(sync.get("status") or "Unknown"),
        health=str(health.get("status") or "Unknown"),
        health_message=str(health.get("message") or ""),
        revision=str(sync.get("revision") or (operation.get("syncResult") or {}).get("revision")
                     or ""),
        operation_phase=str(operation.get("phase") or ""),
        operation_message=str(operation.get("message") or ""))


def parse_deployment(obj: dict[str, Any]) -> RolloutState:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    stalled = ""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == \
                "ProgressDeadlineExceeded":
            stalled = "progress deadline exceeded"
    desired = spec.get("replicas")
    return RolloutState(
        name=str(meta.get("name") or "?"), desired=1 if desired is None else int(desired),
        updated=int(status.get("updatedReplicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        total=int(status.get("replicas") or 0),
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        stalled_reason=stalled,
        selector=dict((spec.get("selector") or {}).get("matchLabels") or {}))


def parse_container(obj: dict[str, Any], init: bool = False) -> ContainerState:
    state = obj.get("state") or {}
    kind = next((k for k in ("running", "waiting", "terminated") if k in state), "unknown")
    detail = state.get(kind) or {}
    return ContainerState(
        name=str(obj.get("name") or "?"), ready=bool(obj.get("ready")), state=kind,
        reason=str(detail.get("reason") or ""), message=str(detail.get("message") or "")[:300],
        restarts=int(obj.get("restartCount") or 0), exit_code=detail.get("exitCode"), init=init)


def parse_pod(obj: dict[str, Any], rollouts: tuple[RolloutState, ...] = ()) -> PodState:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    containers = tuple(parse_container(c, init=True)
                       for c in status.get("initContainerStatuses") or [])
    containers += tuple(parse_container(c) for c in status.get("containerStatuses") or [])
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    return PodState(name=str(meta.get("name") or "?"), phase=str(status.get("phase") or
                    "Unknown"), ready=ready, component=component_of(labels, rollouts),
                    containers=containers, labels=labels,
                    terminating=bool(meta.get("deletionTimestamp")))


def component_of(labels: dict[str, str], rollouts: tuple[RolloutState, ...]) -> str:
    """The Deployment whose selector matches the pod, else its component or name label."""
    for rollout in rollouts:
        if rollout.selector and all(labels.get(k) == v for k, v in rollout.selector.items()):
            return rollout.name
    for key in ("app.kubernetes.io/component", "app.kubernetes.io/name", "app"):
        if labels.get(key):
            return labels[key]
    return ""


def ingress_url(ingresses: list[dict[str, Any]]) -> str:
    """``https://host`` of the first Ingress rule (``http://`` when it has no TLS)."""
    for ingress in ingresses:
        spec = ingress.get("spec") or {}
        for rule in spec.get("rules") or []:
            if rule.get("host"):
                scheme = "https" if spec.get("tls") else "http"
                return f"{scheme}://{rule['host']}"
    return ""


def read_environment_health(reader: ClusterReader, environment: str, namespace: str,
                            argocd_namespace: str = "argocd", url: str = "",
                            expected_revision: str = "") -> EnvironmentHealth:
    """One snapshot: the Application, Deployments, pods (and the URL from the Ingress when
    none is given)."""
    application = parse_application(environment,
                                    reader.application(argocd_namespace, environment))
    rollouts = tuple(parse_deployment(d) for d in reader.deployments(namespace))
    pods = tuple(parse_pod(p, rollouts) for p in reader.pods(namespace))
    if not url:
        url = ingress_url(reader.ingresses(namespace))
    return EnvironmentHealth(environment, namespace, application, rollouts, pods, url,
                             expected_revision)


def health_as_dict(health: EnvironmentHealth) -> dict[str, Any]:
    """A JSON-ready view (for `env status --output json`)."""
    app = health.application
    return {
        "environment": health.environment, "namespace": health.namespace, "url": health.url,
        "healthy": health.healthy, "podsReady": health.pods_ready,
        "application": {"name": app.name, "found": app.found, "sync": app.sync,
                        "health": app.health, "revision": app.revision,
                        "operation": {"phase": app.operation_phase,
                                      "message": app.operation_message}},
        "deployments": [{"name": r.name, "desired": r.desired, "updated": r.updated,
                         "available": r.available, "complete": r.complete}
                        for r in health.rollouts],
        "pods": [{"name": p.name, "component": p.component, "phase": p.phase,
                  "ready": p.ready, "containers": [c.describe() for c in p.containers]}
                 for p in health.pods],
        "problems": health.problems(),
    }
