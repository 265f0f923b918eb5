"""argocd:wait against the Kubernetes API (the stand-in playing Argo CD and the kubelet)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.cluster.actions import ArgoCDWait, ArgoCDWaitInput
from envforge.errors import ClusterConnectionError, EnvironmentNotHealthyError
from tests.standins.cluster_objects import application, deployment, pod, seed_environment
from tests.standins.kubernetes import KubernetesStandin


def ctx(tmp_path: Path, name: str) -> ActionContext:
    return ActionContext(run_id="r1", step_id="wait", template_name="t", template_dir=tmp_path,
                         workspace=tmp_path, environment={"name": name, "namespace": name},
                         logger=logging.getLogger("test.argocd"))


def test_synced_and_healthy_passes(standin: KubernetesStandin, env_name: str,
                                   tmp_path: Path) -> None:
    seed_environment(standin, env_name, host=f"{env_name}-k3v9x.example.test")
    out = ArgoCDWait().run(ctx(tmp_path, env_name), ArgoCDWaitInput(timeoutSeconds=10))
    assert (out.sync, out.health, out.podsReady) == ("Synced", "Healthy", "1/1")
    assert out.url == f"https://{env_name}-k3v9x.example.test"
    assert out.waitedSeconds < 5


def test_degraded_crash_loop_times_out_with_events_and_log_tail(
        standin: KubernetesStandin, env_name: str, tmp_path: Path) -> None:
    seed_environment(standin, env_name, healthy=False,
                     log="booting\nTraceback (most recent call last):\n"
                         "KeyError: 'DATABASE_URL'\n")
    started = time.monotonic()
    with pytest.raises(EnvironmentNotHealthyError) as caught:
        ArgoCDWait().run(ctx(tmp_path, env_name),
                         ArgoCDWaitInput(timeoutSeconds=1.5, pollSeconds=0.3))
    assert time.monotonic() - started < 5
    text = str(caught.value)
    assert env_name in text and "Synced/Degraded" in text
    assert "web-7d9f8-abcde" in text and "CrashLoopBackOff" in text
    assert "BackOff (x12): Back-off restarting failed container app" in text
    assert "KeyError: 'DATABASE_URL'" in text


def test_progressing_then_healthy_passes(standin: KubernetesStandin, env_name: str,
                                         tmp_path: Path) -> None:
    seed_environment(standin, env_name)
    # Argo CD has just applied a change: progressing, the new pod not ready yet.
    standin.set_status("argoproj.io", "applications", "argocd", env_name,
                       application(env_name, "OutOfSync", "Progressing", phase="Running")
                       ["status"])
    standin.set_status("apps", "deployments", env_name, "web",
                       deployment("web", env_name, available=0)["status"])
    standin.set_status("", "pods", env_name, "web-7d9f8-abcde",
                       pod("p", env_name, "web", ready=False, waiting="ContainerCreating",
                           phase="Pending")["status"])

    def controllers_catch_up() -> None:
        time.sleep(1.0)
        standin.set_status("", "pods", env_name, "web-7d9f8-abcde",
                           pod("p", env_name, "web")["status"])
        standin.set_status("apps", "deployments", env_name, "web",
                           deployment("web", env_name)["status"])
        standin.set_status("argoproj.io", "applications", "argocd", env_name,
                           application(env_name)["status"])

    thread = threading.Thread(target=controllers_catch_up)
    thread.start()
    started = time.monotonic()
    out = ArgoCDWait().run(ctx(tmp_path, env_name),
                           ArgoCDWaitInput(timeoutSeconds=15, pollSeconds=0.3))
    thread.join()
    assert (out.sync, out.health) == ("Synced", "Healthy")
    assert 1.0 <= time.monotonic() - started < 10


def test_waits_for_the_expected_revision(standin: KubernetesStandin, env_name: str,
                                         tmp_path: Path) -> None:
    seed_environment(standin, env_name)  # synced at revision 0123456789abcdef
    with pytest.raises(EnvironmentNotHealthyError, match="waiting for feedbeef"):
        ArgoCDWait().run(ctx(tmp_path, env_name),
                         ArgoCDWaitInput(timeoutSeconds=0.6, pollSeconds=0.2,
                                         revision="feedbeef"))


def test_a_dropped_connection_is_ridden_out(standin: KubernetesStandin, env_name: str,
                                            tmp_path: Path) -> None:
    seed_environment(standin, env_name)
    standin.fail("GET", f"/applications/{env_name}$", status=0, times=1)
    out = ArgoCDWait().run(ctx(tmp_path, env_name),
                           ArgoCDWaitInput(timeoutSeconds=10, pollSeconds=0.2))
    assert out.health == "Healthy"


def test_unreachable_cluster_gives_a_clear_error(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        f"clusters: [{{name: gone, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: gone, user: {token: t}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: gone}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(config))
    started = time.monotonic()
    with pytest.raises(ClusterConnectionError) as caught:
        ArgoCDWait().run(ctx(tmp_path, "pr-1"),
                         ArgoCDWaitInput(timeoutSeconds=60, pollSeconds=0.2))
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert "'pr-1'" in message and "did not answer" in message and "KUBECONFIG" in message


def test_wait_for_environment_is_what_a_flow_calls(standin: KubernetesStandin,
                                                   env_name: str) -> None:
    from envforge.cluster.wait import wait_for_environment

    seed_environment(standin, env_name, healthy=False)
    with pytest.raises(EnvironmentNotHealthyError, match="CrashLoopBackOff"):
        wait_for_environment(env_name, timeout_seconds=30, fail_after_failing_seconds=0.5)
    seed_environment(standin, env_name + "-ok")
    health = wait_for_environment(env_name + "-ok", timeout_seconds=10)
    assert health.healthy and health.pods_ready == "1/1"


def test_wait_until_pruned(standin: KubernetesStandin, env_name: str) -> None:
    from envforge.cluster.client import open_cluster
    from envforge.cluster.wait import WaitPolicy, WaitTarget, wait_until_pruned
    from envforge.errors import EnvironmentNotPrunedError

    seed_environment(standin, env_name)
    target = WaitTarget(env_name, env_name)
    with open_cluster() as reader:
        with pytest.raises(EnvironmentNotPrunedError) as caught:
            wait_until_pruned(reader, target, WaitPolicy(timeout_seconds=0.5, poll_seconds=0.2))
        assert f"namespace {env_name} still exists" in str(caught.value)
        assert "Argo CD application argocd/" in str(caught.value)

        def argo_cd_prunes() -> None:  # the finalizer: Application first, then the namespace
            time.sleep(0.5)
            with standin.store.lock:
                store = standin.store
                store.delete(store.resource("argoproj.io", "applications"), "argocd", env_name)
                store.delete(store.resource("", "namespaces"), "", env_name)

        thread = threading.Thread(target=argo_cd_prunes)
        thread.start()
        waited = wait_until_pruned(reader, target, WaitPolicy(timeout_seconds=10,
                                                              poll_seconds=0.2))
        thread.join()
    assert 0.5 <= waited < 5
