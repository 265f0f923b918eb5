"""`env status`, `env logs` (tail and bounded follow) and `env shell` (exec websocket) against
the Kubernetes API; the handlers are called as the `env` group will call them."""

from __future__ import annotations

import argparse
import io
import json
import os
import threading
import time
from typing import Any

import pytest
from kubernetes import client as k8s_client

from blocks.kubernetes import KubernetesCluster
from envforge.cluster import shell
from envforge.cluster.cli import (
    EXIT_UNHEALTHY,
    add_env_commands,
    logs_command,
    pick_shell_target,
    shell_command,
    status_command,
)
from envforge.cluster.client import open_cluster
from envforge.errors import WorkloadNotFoundError
from tests.integration.cluster.conftest import ClusterUnderTest, Workload
from tests.standins.cluster_objects import pod, seed_environment
from tests.standins.kubernetes import KubernetesStandin


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    env = parser.add_subparsers(dest="command").add_parser("env").add_subparsers()
    add_env_commands(env)
    return parser.parse_args(["env", *argv])


def test_status_of_healthy_and_crashing_environments(standin: KubernetesStandin,
                                                     env_name: str) -> None:
    seed_environment(standin, env_name, host="h.example.test")
    out = io.StringIO()
    assert status_command(parse("status", env_name, "--namespace", env_name), out) == 0
    assert "argo cd: Synced / Healthy" in out.getvalue() and "healthy" in out.getvalue()

    broken = env_name + "-b"
    seed_environment(standin, broken, healthy=False)
    out = io.StringIO()
    code = status_command(parse("status", broken, "--namespace", broken, "--output", "json"),
                          out)
    view = json.loads(out.getvalue())
    assert code == EXIT_UNHEALTHY
    assert view["application"]["health"] == "Degraded" and view["podsReady"] == "0/1"
    assert any("CrashLoopBackOff" in p for p in view["problems"])


def test_status_of_an_environment_argo_cd_has_not_created(cluster: ClusterUnderTest,
                                                          env_name: str) -> None:
    """Runs on a real cluster too: a fresh namespace and no Application."""
    with KubernetesCluster.from_environment().get_client() as api:
        core = k8s_client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": env_name}})
        try:
            out = io.StringIO()
            code = status_command(parse("status", env_name, "--namespace", env_name), out)
        finally:
            core.delete_namespace(env_name)
    assert code == EXIT_UNHEALTHY
    assert f"application {env_name} not found" in out.getvalue()
    assert "deployments: none" in out.getvalue()


def test_logs_tail_component_and_unknown_component(web_workload: Workload) -> None:
    ns = web_workload.namespace
    out = io.StringIO()
    assert logs_command(parse("logs", ns, "--namespace", ns, "--component", "web",
                              "--tail", "3"), out) == 0
    assert out.getvalue().splitlines() == ["line 47", "line 48", "line 49"]
    with pytest.raises(WorkloadNotFoundError, match="components: web"):
        logs_command(parse("logs", ns, "--namespace", ns, "--component", "api"),
                     io.StringIO())


def test_logs_follow_streams_new_lines_and_is_bounded(standin: KubernetesStandin,
                                                      env_name: str) -> None:
    seed_environment(standin, env_name, log="first\n")

    def app_logs_more() -> None:
        time.sleep(0.4)
        standin.set_pod_log(env_name, "web-7d9f8-abcde", "first\nrequest GET /healthz 200\n")

    thread = threading.Thread(target=app_logs_more)
    thread.start()
    out = io.StringIO()
    started = time.monotonic()
    logs_command(parse("logs", env_name, "--namespace", env_name, "-f", "--max-seconds",
                       "1.5"), out)
    elapsed = time.monotonic() - started
    thread.join()
    assert out.getvalue().splitlines() == ["first", "request GET /healthz 200"]
    assert 1.4 <= elapsed < 4  # ended by --max-seconds while the stream was still open


def test_shell_through_the_exec_websocket(cluster: ClusterUnderTest,
                                           web_workload: Workload) -> None:
    ns = web_workload.namespace
    with open_cluster() as reader:
        target = pick_shell_target(reader, ns, ns, "web", None)
        assert target == (web_workload.pod, "app")
        client = shell.open_exec(reader, ns, target[0], target[1], ["/bin/sh"], True)
        shell.send_resize(client, 132, 43)
        read_fd, write_fd = os.pipe()
        os.write(write_fd, b"echo hello from the pod\rexit 3\r")
        out, err = io.BytesIO(), io.BytesIO()
        with os.fdopen(read_fd, "rb") as stdin:
            code = shell.pump(client, stdin, out, err)
        os.close(write_fd)
    assert code == 3
    # after a newline: the tty's echo of what was typed is preceded by the prompt instead
    assert "\nhello from the pod" in out.getvalue().decode()
    if cluster.standin is not None:  # what the server saw
        session = cluster.standin.exec_sessions[-1]  # type: ignore[attr-defined]
        assert session.command == ["/bin/sh"] and session.tty
        assert session.sizes == [(132, 43)]


def test_shell_command_runs_a_command_without_a_terminal(
        cluster: ClusterUnderTest, web_workload: Workload, monkeypatch: pytest.MonkeyPatch,
        capfdbinary: Any) -> None:
    ns = web_workload.namespace
    read_fd, write_fd = os.pipe()
    os.close(write_fd)  # no input: stdin at EOF
    with os.fdopen(read_fd, "r") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        code = shell_command(parse("shell", ns, "--namespace", ns, "--command",
                                   "echo migrated 3 tables"))
    assert code == 0
    assert b"migrated 3 tables" in capfdbinary.readouterr().out  # no tty, so no echo
    if cluster.standin is not None:
        assert cluster.standin.exec_sessions[-1].tty is False  # type: ignore[attr-defined]


def test_shell_needs_a_running_pod(standin: KubernetesStandin, env_name: str) -> None:
    seed_environment(standin, env_name)
    standin.set_status("", "pods", env_name, "web-7d9f8-abcde",
                       pod("p", env_name, "web", ready=False, phase="Pending",
                           waiting="ContainerCreating")["status"])
    with open_cluster() as reader, pytest.raises(WorkloadNotFoundError, match="no running pod"):
        pick_shell_target(reader, env_name, env_name, None, None)


def test_status_finds_namespace_and_url_in_the_gitops_record(
        standin: KubernetesStandin, env_name: str, tmp_path: Any) -> None:
    from envforge.gitops.repository import open_store
    from tests.unit.gitops.helpers import spec, write_manifests

    with open_store() as store:  # the embedded repository under this test's ENVFORGE_HOME
        record = store.new_record(env_name, spec(), "1d")
        store.create(record, write_manifests(tmp_path / "manifests"))
    seed_environment(standin, env_name)
    out = io.StringIO()
    assert status_command(parse("status", env_name), out) == 0
    assert record.status.url in out.getvalue()  # from the record, not the cluster


def test_status_of_an_environment_not_in_git_is_refused(standin: KubernetesStandin) -> None:
    from envforge.errors import EnvironmentNotFoundError

    with pytest.raises(EnvironmentNotFoundError, match="envforge env list"):
        status_command(parse("status", "nowhere-1"), io.StringIO())
