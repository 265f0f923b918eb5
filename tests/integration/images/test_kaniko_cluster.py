"""The Kaniko build run against the Kubernetes API stand-in (tests/standins): the runner
creates the ConfigMap and Job, follows the Job, reads the digest or the failing step. A small
"controller" thread plays the kubelet's part: it makes the Job's pod and finishes it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config as k8s_config

from envforge.errors import ImageBuildFailedError
from envforge.images.build import ImageBuildSpec, build_image, kaniko_builder
from envforge.images.builders import BuildRequest
from envforge.images.kaniko import KanikoJobBuilder, KanikoSettings, job_name
from envforge.images.kaniko_run import KanikoJobRunner
from envforge.images.registry_client import RegistryAccess
from envforge.images.source import GitSourceCache
from tests.integration.images.conftest import Registry
from tests.standins.kubernetes import KubernetesStandin, start_kubernetes_standin

NAMESPACE = "envforge-builds"
IMAGE = "registry.example.com/team/web:0123456789ab-cafebabe"
DIGEST = "sha256:" + "5" * 64


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[tuple[KubernetesStandin, Any]]:
    server = start_kubernetes_standin()
    server.register("batch", "v1", "jobs", "Job")
    server.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    api_client = k8s_config.new_client_from_config(
        str(server.write_kubeconfig(tmp_path / "kubeconfig")))
    try:
        yield server, api_client
    finally:
        api_client.close()
        server.stop()


def _request() -> BuildRequest:
    return BuildRequest(image=IMAGE, registry=RegistryAccess("registry.example.com/team"),
                        dockerfile_text="FROM busybox\nRUN make\n",
                        source_url="https://git.example.com/acme/web.git",
                        commit="0123456789ab" + "0" * 28, ref_name="refs/heads/main")


def _play_kubelet(server: KubernetesStandin, succeed: bool) -> threading.Thread:
    name = job_name(IMAGE)

    def run() -> None:
        deadline = time.monotonic() + 10
        while server.get("batch", "jobs", NAMESPACE, name) is None:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        pod = f"{name}-x7k2p"
        server.add({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod, "namespace": NAMESPACE,
                                 "labels": {"job-name": name}},
                    "spec": {"containers": [{"name": "kaniko", "image": "kaniko"}]}})
        message = DIGEST if succeed else ""
        server.set_status("", "pods", NAMESPACE, pod, {"containerStatuses": [{
            "name": "kaniko", "image": "kaniko", "imageID": "", "ready": False,
            "restartCount": 0, "state": {"terminated": {"exitCode": 0 if succeed else 1,
                                                        "message": message}}}]})
        server.set_pod_log(NAMESPACE, pod, "\n".join([
            "INFO[0001] Retrieving image manifest busybox",
            "INFO[0002] FROM busybox",
            "INFO[0003] RUN make",
            "cc -o app main.c",
            "main.c:1: error: expected ';'",
            "error building image: error building stage: exit status 2"]))
        server.set_status("batch", "jobs", NAMESPACE, name,
                          {"succeeded": 1} if succeed else {"failed": 1})

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_kaniko_job_succeeds_and_returns_the_digest(
    standin: tuple[KubernetesStandin, Any],
) -> None:
    server, api_client = standin
    builder = KanikoJobBuilder(KanikoSettings(namespace=NAMESPACE),
                               submit=KanikoJobRunner(api_client, poll_seconds=0.05,
                                                      timeout_seconds=15))
    kubelet = _play_kubelet(server, succeed=True)
    result = builder.build_and_push(_request(), logging.getLogger("test.kaniko"))
    kubelet.join(5)
    assert result.digest == DIGEST
    job = server.get("batch", "jobs", NAMESPACE, job_name(IMAGE))
    assert job is not None
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--destination={IMAGE}" in args
    assert server.get("", "configmaps", NAMESPACE, job_name(IMAGE)) is None  # cleaned up


def test_kaniko_job_failure_names_the_step(standin: tuple[KubernetesStandin, Any]) -> None:
    server, api_client = standin
    builder = KanikoJobBuilder(KanikoSettings(namespace=NAMESPACE),
                               submit=KanikoJobRunner(api_client, poll_seconds=0.05,
                                                      timeout_seconds=15))
    kubelet = _play_kubelet(server, succeed=False)
    with pytest.raises(ImageBuildFailedError) as caught:
        builder.build_and_push(_request(), logging.getLogger("test.kaniko"))
    kubelet.join(5)
    assert caught.value.step == "RUN make"
    assert "main.c:1: error: expected ';'" in caught.value.last_lines


def test_build_image_with_the_kaniko_builder_from_kubeconfig(
    standin: tuple[KubernetesStandin, Any], make_repo: Callable[..., Path],
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, _ = standin
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    monkeypatch.setenv("ENVFORGE_KANIKO_NAMESPACE", NAMESPACE)
    builder = kaniko_builder()
    assert isinstance(builder, KanikoJobBuilder)
    assert isinstance(builder._submit, KanikoJobRunner)
    builder._submit.poll_seconds = 0.05
    bare = make_repo({"index.html": "x\n"})
    spec = ImageBuildSpec(repo_url=bare.as_uri(), ref="main", app="web")
    # the Job is named after the tag, which depends on the commit: find it when it appears
    kubelet = threading.Thread(target=_finish_any_job, args=(server,), daemon=True)
    kubelet.start()
    built = build_image(spec, registry.access, builder, GitSourceCache(tmp_path / "src"),
                        logging.getLogger("test.kaniko"))
    kubelet.join(5)
    assert built.digest == DIGEST and not built.cached and built.stack == "static"
    assert not (tmp_path / "src" / "worktrees").exists()  # Kaniko clones for itself


def _finish_any_job(server: KubernetesStandin) -> None:
    deadline = time.monotonic() + 10
    while not server.objects("batch", "jobs", NAMESPACE) and time.monotonic() < deadline:
        time.sleep(0.05)
    for job in server.objects("batch", "jobs", NAMESPACE):
        name = job["metadata"]["name"]
        server.add({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": f"{name}-p", "namespace": NAMESPACE,
                                 "labels": {"job-name": name}},
                    "spec": {"containers": [{"name": "kaniko", "image": "kaniko"}]}})
        server.set_status("", "pods", NAMESPACE, f"{name}-p", {"containerStatuses": [{
            "name": "kaniko", "image": "kaniko", "imageID": "", "ready": False,
            "restartCount": 0, "state": {"terminated": {"exitCode": 0, "message": DIGEST}}}]})
        server.set_status("batch", "jobs", NAMESPACE, name, {"succeeded": 1})
