"""`env status`, `env logs` (tail and bounded follow) and `env shell` (exec websocket) against
the real API server and its node (the kubelet answering logs and exec); the handlers are
called as the `env` group calls them."""

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
from envforge.errors import ClusterApiError, WorkloadNotFoundError
from tests.integration.cluster.conftest import (
    LOG_LINES,
    ClusterUnderTest,
    Workload,
    seed_environment,
)
from tests.services_fixtures import make_services


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.set_defaults(make_services=make_services)  # as envforge.cli.build_parser does
    env = parser.add_subparsers(dest="command").add_parser("env").add_subparsers()
    add_env_commands(env)
    return parser.parse_args(["env", *argv])


def test_status_of_healthy_and_crashing_environments(cluster: ClusterUnderTest,
                                                     env_name: str) -> None:
    seed_environment(cluster, env_name, host="h.example.test")
    out = io.StringIO()
    assert status_command(parse("status", env_name, "--namespace", env_name), out) == 0
    assert "argo cd: Synced / Healthy" in out.getvalue() and "healthy" in out.getvalue()

    broken = env_name + "-b"
    seed_environment(cluster, broken, healthy=False)
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


def test_logs_tail_component_and_unknown_component(cluster: ClusterUnderTest,
                                                   web_workload: Workload) -> None:
    ns = web_workload.namespace
    last = LOG_LINES[-3:]
    out = io.StringIO()
    assert logs_command(parse("logs", ns, "--namespace", ns, "--component", "web",
                              "--tail", "3"), out) == 0
    assert out.getvalue().splitlines() == last
    with pytest.raises(WorkloadNotFoundError, match="components: web"):
        logs_command(parse("logs", ns, "--namespace", ns, "--component", "api"),
                     io.StringIO())


def test_logs_of_a_pod_that_has_not_started_are_reported_not_fatal(
        cluster: ClusterUnderTest, env_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    if cluster.image is None:
        pytest.skip("the 400 'container ... is waiting to start' is the kubelet's answer "
                    "(validateContainerLogStatus); kwok v0.8.0 serves a log for every "
                    "container whatever its state")
    # a container that never started: its image cannot be pulled (waiting, no previous log)
    seed_environment(cluster, env_name, wait=False,
                     image=cluster.image.rsplit(":", 1)[0] + ":no-such-tag")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pods = json.loads(cluster.plane.kubectl("-n", env_name, "get", "pods", "-o",
                                                "json").stdout)["items"]
        waiting = {s["state"].get("waiting", {}).get("reason") for p in pods
                   for s in p["status"].get("containerStatuses", [])}
        if waiting & {"ErrImagePull", "ImagePullBackOff"}:
            break
        time.sleep(0.3)
    else:
        pytest.fail("the pod never waited on its image pull")
    out = io.StringIO()
    code = logs_command(parse("logs", env_name, "--namespace", env_name), out)
    assert "waiting to start" in capsys.readouterr().err and code == 1


def test_logs_of_an_environment_where_one_pod_is_gone_read_the_others(
        cluster: ClusterUnderTest, env_name: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod deleted between the listing and its read (a rollout) is a real 404 from the API
    server: reported for that pod, the others are read."""
    seed_environment(cluster, env_name)
    with KubernetesCluster.from_environment().get_client() as api:
        apps = k8s_client.AppsV1Api(api)
        apps.create_namespaced_deployment(env_name, {
            "metadata": {"name": "api"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "api"}},
                     "template": {"metadata": {"labels": {"app.kubernetes.io/name": "api"}},
                                  "spec": {"containers": [{"name": "app", "image":
                                                           cluster.image or "a:1"}],
                                           "terminationGracePeriodSeconds": 1}}}})
        wait_for_available_named(apps, env_name, "api")
    from envforge.cluster import cli
    from envforge.cluster.logs import select_pods

    def select_then_one_goes(reader: Any, *args: Any, **kwargs: Any) -> Any:
        pods = select_pods(reader, *args, **kwargs)
        api_pod = next(p.name for p in pods if p.component == "api")
        cluster.plane.kubectl("-n", env_name, "delete", "pod", api_pod, "--grace-period=0",
                              "--force", "--wait=true")
        return pods

    monkeypatch.setattr(cli, "select_pods", select_then_one_goes)
    out = io.StringIO()
    assert logs_command(parse("logs", env_name, "--namespace", env_name, "--tail", "2"),
                        out) == 0
    warning = capsys.readouterr().err
    assert "no longer exists" in warning and "[api-" not in out.getvalue()
    assert len(out.getvalue().splitlines()) == 2 and "[web-" in out.getvalue()


def wait_for_available_named(apps: Any, namespace: str, name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (apps.read_namespaced_deployment(name, namespace).status.available_replicas or 0):
            return
        time.sleep(0.3)
    pytest.fail(f"Deployment {namespace}/{name} did not become available")


def test_logs_follow_streams_new_lines_and_is_bounded(cluster: ClusterUnderTest,
                                                      web_workload: Workload) -> None:
    ns = web_workload.namespace

    def app_logs_more() -> None:
        time.sleep(1.0)
        cluster.app_logs(ns, web_workload.pod, "request GET /healthz 200")

    thread = threading.Thread(target=app_logs_more)
    thread.start()
    out = io.StringIO()
    started = time.monotonic()
    logs_command(parse("logs", ns, "--namespace", ns, "-f", "--tail", "1", "--max-seconds",
                       "3"), out)
    elapsed = time.monotonic() - started
    thread.join()
    lines = out.getvalue().splitlines()
    assert lines[-1] == "request GET /healthz 200" and len(lines) == 2
    assert 2.9 <= elapsed < 7  # ended by --max-seconds while the stream was still open


def test_shell_through_the_exec_websocket(cluster: ClusterUnderTest,
                                           web_workload: Workload) -> None:
    """The kubelet runs the command in the container (kwok: on this machine in DIR/exec),
    behind the real API server's exec endpoint and its v5 websocket."""
    ns = web_workload.namespace
    with open_cluster(make_services().connections) as reader:
        target = pick_shell_target(reader, ns, ns, "web", None)
        assert target == (web_workload.pod, "app")
        client = shell.open_exec(reader, ns, target[0], target[1],
                                 ["/bin/sh", "-c", "echo hello from the pod; pwd"], False)
        assert client.subprotocol == "v5.channel.k8s.io"
        read_fd, write_fd = os.pipe()
        os.close(write_fd)
        out, err = io.BytesIO(), io.BytesIO()
        with os.fdopen(read_fd, "rb") as stdin:
            code = shell.pump(client, stdin, out, err)
    assert code == 0
    workdir = "/www" if cluster.image else str(cluster.kubeconfig.parent / "exec")
    assert out.getvalue().decode().splitlines() == ["hello from the pod", workdir]


def test_a_failing_remote_command_is_an_error(cluster: ClusterUnderTest,
                                              web_workload: Workload) -> None:
    """The kubelet reports a non-zero exit as an ExitCode cause: our exit code (kwok's local
    exec reports an internal error, which must not pass for success either)."""
    ns = web_workload.namespace
    with open_cluster(make_services().connections) as reader:
        client = shell.open_exec(reader, ns, web_workload.pod, "app",
                                 ["/bin/sh", "-c", "exit 3"], False)
        read_fd, write_fd = os.pipe()
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as stdin:
            if cluster.image is None:
                with pytest.raises(ClusterApiError, match="exit status 3"):
                    shell.pump(client, stdin, io.BytesIO(), io.BytesIO())
                return
            assert shell.pump(client, stdin, io.BytesIO(), io.BytesIO()) == 3


def test_stdin_closed_at_eof_ends_a_command_reading_it(cluster: ClusterUnderTest,
                                                       web_workload: Workload) -> None:
    if cluster.image is None:
        pytest.skip("kwok v0.8.0's local exec does not end the command's stdin when the API "
                    "server forwards the v5 CLOSE of channel 0")
    ns = web_workload.namespace
    with open_cluster(make_services().connections) as reader:
        client = shell.open_exec(reader, ns, web_workload.pod, "app", ["cat"], False)
        read_fd, write_fd = os.pipe()
        os.write(write_fd, b"to cat\n")
        os.close(write_fd)
        out = io.BytesIO()
        with os.fdopen(read_fd, "rb") as stdin:
            assert shell.pump(client, stdin, out, io.BytesIO()) == 0
    assert out.getvalue() == b"to cat\n"


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


def test_shell_needs_a_running_pod(cluster: ClusterUnderTest, env_name: str) -> None:
    seed_environment(cluster, env_name, wait=False)
    cluster.plane.kubectl("-n", env_name, "scale", "deployment/web", "--replicas=0")
    # the ReplicaSet controller deletes the pod after the scale returns: wait until every pod
    # is being deleted or gone (a deleted pod stays Running through its grace period)
    deadline = time.monotonic() + 60
    while True:
        listed = cluster.plane.kubectl("-n", env_name, "get", "pods", "-o", "json")
        pods = json.loads(listed.stdout)
        if all(p["metadata"].get("deletionTimestamp") for p in pods["items"]):
            break
        assert time.monotonic() < deadline, "the scaled-away pod was never deleted"
        time.sleep(0.2)
    with open_cluster(make_services().connections) as reader, pytest.raises(WorkloadNotFoundError, match="no running pod"):
        pick_shell_target(reader, env_name, env_name, None, None)


def test_status_finds_namespace_and_url_in_the_gitops_record(
        cluster: ClusterUnderTest, env_name: str, tmp_path: Any) -> None:
    from envforge.gitops.repository import open_store
    from tests.unit.gitops.helpers import spec, write_manifests

    with open_store() as store:  # the embedded repository under this test's ENVFORGE_HOME
        record = store.new_record(env_name, spec(), "1d")
        store.create(record, write_manifests(tmp_path / "manifests"))
    seed_environment(cluster, env_name)
    out = io.StringIO()
    assert status_command(parse("status", env_name), out) == 0
    assert record.status.url in out.getvalue()  # from the record, not the cluster


def test_status_of_an_environment_not_in_git_is_refused(cluster: ClusterUnderTest) -> None:
    from envforge.errors import EnvironmentNotFoundError

    with pytest.raises(EnvironmentNotFoundError, match="envforge env list"):
        status_command(parse("status", "nowhere-1"), io.StringIO())
