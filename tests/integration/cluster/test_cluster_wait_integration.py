"""argocd:wait against the real API server and its node; the tests write the Application's
status as Argo CD's controller does."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.cluster.actions import ArgoCDWait, ArgoCDWaitInput
from envforge.errors import ClusterConnectionError, EnvironmentNotHealthyError
from tests.integration.cluster.conftest import (
    LOG_LINES,
    ClusterUnderTest,
    application_status,
    seed_environment,
    write_application_status,
)
from tests.services_fixtures import make_services


def ctx(tmp_path: Path, name: str) -> ActionContext:
    return ActionContext(services=make_services(), run_id="r1", step_id="wait", template_name="t", template_dir=tmp_path,
                         workspace=tmp_path, environment={"name": name, "namespace": name},
                         logger=logging.getLogger("test.argocd"))


def test_synced_and_healthy_passes(cluster: ClusterUnderTest, env_name: str,
                                   tmp_path: Path) -> None:
    seed_environment(cluster, env_name, host=f"{env_name}-k3v9x.example.test")
    out = ArgoCDWait().run(ctx(tmp_path, env_name), ArgoCDWaitInput(timeoutSeconds=10))
    assert (out.sync, out.health, out.podsReady) == ("Synced", "Healthy", "1/1")
    assert out.url == f"https://{env_name}-k3v9x.example.test"
    assert out.waitedSeconds < 5


def test_degraded_crash_loop_times_out_with_events_and_log_tail(
        cluster: ClusterUnderTest, env_name: str, tmp_path: Path) -> None:
    pod = seed_environment(cluster, env_name, healthy=False)
    started = time.monotonic()
    with pytest.raises(EnvironmentNotHealthyError) as caught:
        ArgoCDWait().run(ctx(tmp_path, env_name),
                         ArgoCDWaitInput(timeoutSeconds=1.5, pollSeconds=0.3))
    assert time.monotonic() - started < 5
    text = str(caught.value)
    assert env_name in text and "Synced/Degraded" in text
    assert pod in text and "CrashLoopBackOff" in text
    # the kubelet's event, with its count (kwok: the event seed_environment wrote)
    assert re.search(r"BackOff \(x\d+\): Back-off restarting failed container app", text)
    assert f"{LOG_LINES[-1]}\n" in text + "\n"  # the crashed container's last log line


def test_progressing_then_healthy_passes(cluster: ClusterUnderTest, env_name: str,
                                         tmp_path: Path) -> None:
    # Argo CD has just applied the manifests: OutOfSync/Progressing, the rollout under way.
    seed_environment(cluster, env_name, wait=False, status=application_status(
        "OutOfSync", "Progressing", phase="Running", message="syncing"))

    def argo_cd_catches_up() -> None:
        time.sleep(1.0)
        with cluster.api() as api:
            write_application_status(api, env_name, application_status())

    thread = threading.Thread(target=argo_cd_catches_up)
    thread.start()
    started = time.monotonic()
    out = ArgoCDWait().run(ctx(tmp_path, env_name),
                           ArgoCDWaitInput(timeoutSeconds=60, pollSeconds=0.3))
    thread.join()
    assert (out.sync, out.health, out.podsReady) == ("Synced", "Healthy", "1/1")
    assert 1.0 <= time.monotonic() - started < 30


def test_waits_for_the_expected_revision(cluster: ClusterUnderTest, env_name: str,
                                         tmp_path: Path) -> None:
    seed_environment(cluster, env_name)  # synced at revision 0123456789abcdef
    with pytest.raises(EnvironmentNotHealthyError, match="waiting for feedbeef"):
        ArgoCDWait().run(ctx(tmp_path, env_name),
                         ArgoCDWaitInput(timeoutSeconds=0.6, pollSeconds=0.2,
                                         revision="feedbeef"))


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


def test_wait_for_environment_is_what_a_flow_calls(cluster: ClusterUnderTest,
                                                   env_name: str) -> None:
    from envforge.cluster.wait import wait_for_environment

    seed_environment(cluster, env_name, healthy=False)
    with pytest.raises(EnvironmentNotHealthyError, match="CrashLoopBackOff"):
        wait_for_environment(env_name, timeout_seconds=30, fail_after_failing_seconds=0.5,
                             connections=make_services().connections)
    seed_environment(cluster, env_name + "-ok")
    health = wait_for_environment(env_name + "-ok", timeout_seconds=10,
                                  connections=make_services().connections)
    assert health.healthy and health.pods_ready == "1/1"


def test_wait_until_pruned(cluster: ClusterUnderTest, env_name: str) -> None:
    from envforge.cluster.client import open_cluster
    from envforge.cluster.wait import WaitPolicy, WaitTarget, wait_until_pruned
    from envforge.errors import EnvironmentNotPrunedError

    seed_environment(cluster, env_name)
    target = WaitTarget(env_name, env_name)
    with open_cluster(make_services().connections) as reader:
        with pytest.raises(EnvironmentNotPrunedError) as caught:
            wait_until_pruned(reader, target, WaitPolicy(timeout_seconds=0.5, poll_seconds=0.2))
        assert f"namespace {env_name} still exists" in str(caught.value)
        assert "Argo CD application argocd/" in str(caught.value)

        def argo_cd_prunes() -> None:  # the finalizer: Application first, then the namespace
            time.sleep(0.5)
            cluster.plane.kubectl("-n", "argocd", "delete", "applications.argoproj.io",
                                  env_name, "--wait=false")
            cluster.plane.kubectl("delete", "namespace", env_name, "--wait=false")

        thread = threading.Thread(target=argo_cd_prunes)
        thread.start()
        # the real namespace stays Terminating until the namespace controller emptied it
        waited = wait_until_pruned(reader, target, WaitPolicy(timeout_seconds=60,
                                                              poll_seconds=0.2))
        thread.join()
        assert not reader.namespace_exists(env_name)
    assert 0.5 <= waited < 60
