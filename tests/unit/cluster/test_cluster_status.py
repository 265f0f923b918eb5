"""Parsing Argo CD, Deployment and pod status into a verdict and problems."""

from __future__ import annotations

from envforge.cluster.status import (
    EnvironmentHealth,
    health_as_dict,
    ingress_url,
    parse_application,
    parse_deployment,
    parse_pod,
)
from tests.unit.cluster.objects import application, deployment, ingress, pod


def health(app: dict | None, deployments: list[dict], pods: list[dict],
           expected_revision: str = "") -> EnvironmentHealth:
    rollouts = tuple(parse_deployment(d) for d in deployments)
    return EnvironmentHealth("pr-1", "pr-1", parse_application("pr-1", app), rollouts,
                             tuple(parse_pod(p, rollouts) for p in pods), "",
                             expected_revision)


def test_synced_healthy_rolled_out_is_healthy() -> None:
    h = health(application("pr-1"), [deployment("web", "pr-1", replicas=2)],
               [pod("web-a", "pr-1", "web"), pod("web-b", "pr-1", "web")])
    assert h.healthy
    assert h.problems() == []
    assert h.pods_ready == "2/2"
    assert h.pods[0].component == "web"  # matched by the Deployment's selector


def test_application_fields_are_read() -> None:
    app = parse_application("pr-1", application("pr-1", "OutOfSync", "Progressing", "abc",
                                                "Running", "waiting for healthy state"))
    assert (app.sync, app.health, app.revision) == ("OutOfSync", "Progressing", "abc")
    assert (app.operation_phase, app.operation_message) == ("Running",
                                                            "waiting for healthy state")
    problem = app.problem() or ""
    assert "OutOfSync/Progressing" in problem and "waiting for healthy state" in problem


def test_missing_application_is_not_healthy() -> None:
    h = health(None, [], [])
    assert not h.healthy
    assert h.problems() == ["Argo CD application pr-1 does not exist yet"]


def test_rollout_incomplete_cases() -> None:
    cases = {
        "unobserved": deployment("web", "ns", generation=3, observed=2),
        "unavailable": deployment("web", "ns", replicas=2, available=1),
        "not updated": deployment("web", "ns", replicas=2, updated=1),
    }
    for label, obj in cases.items():
        rollout = parse_deployment(obj)
        assert not rollout.complete, label
        assert rollout.problem(), label
    old = deployment("web", "ns", replicas=2)
    old["status"]["replicas"] = 3  # one old replica still terminating
    assert "old replica" in (parse_deployment(old).problem() or "")
    stalled = deployment("web", "ns")
    stalled["status"]["conditions"] = [{"type": "Progressing", "status": "False",
                                        "reason": "ProgressDeadlineExceeded"}]
    assert "progress deadline exceeded" in (parse_deployment(stalled).problem() or "")
    default_replicas = deployment("web", "ns")
    del default_replicas["spec"]["replicas"]
    assert parse_deployment(default_replicas).desired == 1


def test_crash_looping_pod_fails_the_verdict_even_when_argo_says_healthy() -> None:
    crashing = pod("web-a", "pr-1", "web", ready=False, waiting="CrashLoopBackOff", restarts=3,
                   message="back-off 40s")
    h = health(application("pr-1"), [deployment("web", "pr-1")], [crashing])
    assert not h.healthy
    [problem] = [p for p in h.problems() if p.startswith("pod")]
    assert "CrashLoopBackOff" in problem and "restarts 3" in problem
    assert h.failing_pods()[0].name == "web-a"


def test_image_pull_backoff_and_pending_pods() -> None:
    pulling = parse_pod(pod("a", "ns", "web", ready=False, waiting="ImagePullBackOff"))
    assert pulling.failing
    pending = parse_pod(pod("b", "ns", "web", ready=False, waiting="ContainerCreating",
                            phase="Pending"))
    assert not pending.failing  # still starting, not failing
    assert "Pending" in (pending.problem() or "")
    restarted_but_fine = parse_pod(pod("c", "ns", "web", restarts=2))
    assert not restarted_but_fine.failing and restarted_but_fine.problem() is None


def test_expected_revision_must_match() -> None:
    deployments, pods = [deployment("web", "pr-1")], [pod("web-a", "pr-1", "web")]
    old = health(application("pr-1", revision="aaaa1111"), deployments, pods, "bbbb2222")
    assert not old.healthy
    assert any("waiting for bbbb2222" in p for p in old.problems())
    short = health(application("pr-1", revision="bbbb2222cccc"), deployments, pods, "bbbb2222")
    assert short.healthy


def test_component_falls_back_to_labels_and_url_from_ingress() -> None:
    lone = pod("worker-x", "ns", "worker")
    assert parse_pod(lone, ()).component == "worker"
    assert ingress_url([ingress("web", "ns", "pr-1-abc.example.test")]) == \
        "https://pr-1-abc.example.test"
    plain = ingress("web", "ns", "h.example.test")
    del plain["spec"]["tls"]
    assert ingress_url([plain]) == "http://h.example.test"
    assert ingress_url([]) == ""


def test_json_view_holds_the_verdict() -> None:
    h = health(application("pr-1", health="Degraded"), [deployment("web", "pr-1")],
               [pod("web-a", "pr-1", "web")])
    view = health_as_dict(h)
    assert view["healthy"] is False
    assert view["application"]["health"] == "Degraded"
    assert view["deployments"][0]["complete"] is True
    assert view["problems"]


def test_pending_pod_blocks_health_and_terminating_one_does_not() -> None:
    pending = pod("web-new", "pr-1", "web", ready=False, waiting="ContainerCreating",
                  phase="Pending")
    assert not health(application("pr-1"), [deployment("web", "pr-1")], [pending]).healthy
    leaving = pod("web-old", "pr-1", "web", ready=False)
    leaving["metadata"]["deletionTimestamp"] = "2026-11-24T02:00:00Z"
    settled = health(application("pr-1"), [deployment("web", "pr-1")],
                     [pod("web-a", "pr-1", "web"), leaving])
    assert settled.healthy and settled.pods_ready == "1/1"
