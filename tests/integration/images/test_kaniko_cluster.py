"""The Kaniko build run against the real Kubernetes API server (tests/kube.py): the runner
creates the ConfigMap and Job, the real job controller makes the pod and the scheduler binds
it, the runner follows the Job and reads the digest or the failing step.

On the real node (the default as root) the pod really runs: its volumes are mounted, its
container writes the digest to /dev/termination-log as Kaniko's ``--digest-file`` does, or
prints Kaniko's log lines and exits 1, and the kubelet reports both. Kaniko's executor image
cannot be had here (gcr.io is out of reach), so the container is the session's busybox with a
command in place of the executor, given Kaniko's own arguments: everything around the
executor is real. With kwok (ENVFORGE_NODE=kwok, not root) the test plays the kubelet for that
one pod instead (kwok leaves pods annotated ``kwok.x-k8s.io/status: custom`` alone): it
writes the termination through the pod's status and Kaniko's log into kwok's log file."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
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
from tests.integration.cluster.real_node import (  # noqa: F401  (the session's images)
    NodeImages,
    docker_config_secret,
    node_images,
)
from tests.integration.images.conftest import Registry
from tests.kube import ControlPlane

IMAGE = "registry.example.com/team/web:0123456789ab-cafebabe"
DIGEST = "sha256:" + "5" * 64
KANIKO_LOG = ["INFO[0001] Retrieving image manifest busybox", "INFO[0002] FROM busybox",
              "INFO[0003] RUN make", "cc -o app main.c", "main.c:1: error: expected ';'",
              "error building image: error building stage: exit status 2"]
UNMANAGED = {"kwok.x-k8s.io/status": "custom"}  # this pod's kubelet is the test


@pytest.fixture
def namespace(kube_control_plane: ControlPlane) -> Iterator[str]:
    name = f"envforge-builds-{uuid.uuid4().hex[:6]}"
    kube_control_plane.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kube_control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def api_client(kube_control_plane: ControlPlane) -> Iterator[Any]:
    client = k8s_config.new_client_from_config(str(kube_control_plane.kubeconfig))
    try:
        yield client
    finally:
        client.close()


#: In place of Kaniko's executor, given its arguments: check the mounted Dockerfile and
#: registry credentials, then write the digest where --digest-file says (the termination
#: message); or print Kaniko's log and fail as it does.
EXECUTOR_SUCCEEDS = ('for a; do case "$a" in --dockerfile=*) test -s "${a#*=}" || exit 3;; '
                     '--digest-file=*) out="${a#*=}";; esac; done; '
                     'test -s /kaniko/.docker/config.json || exit 4; printf %s "$DIGEST" > "$out"')
EXECUTOR_FAILS = 'printf "%s\\n" "$LOG"; exit 1'


def _unmanaged_pods(builder: KanikoJobBuilder, monkeypatch: pytest.MonkeyPatch,
                    run: tuple[str, bool] | None = None) -> None:
    """kwok: the Job's pod is left to the test. ``run`` (image, succeed) on a real node: the
    pod's container is that image running the executor's stand-in."""
    render = builder.render

    def annotated(request: BuildRequest) -> list[dict[str, Any]]:
        manifests = render(request)
        for manifest in manifests:
            if manifest["kind"] != "Job":
                continue
            template = manifest["spec"]["template"]
            if run is None:
                template.setdefault("metadata", {}).setdefault("annotations", {}).update(
                    UNMANAGED)
                continue
            image, succeed = run
            container = template["spec"]["containers"][0]
            container["image"] = image
            container["command"] = ["sh", "-c", EXECUTOR_SUCCEEDS if succeed
                                    else EXECUTOR_FAILS, "executor"]
            container["env"] = [*container.get("env", []), {"name": "DIGEST", "value": DIGEST},
                                {"name": "LOG", "value": "\n".join(KANIKO_LOG)}]
            container["resources"] = {"requests": {"cpu": "50m", "memory": "16Mi"}}
        return manifests

    monkeypatch.setattr(builder, "render", annotated)


@pytest.fixture
def real_executor(kube_control_plane: ControlPlane, namespace: str,
                  request: pytest.FixtureRequest) -> str | None:
    """On a real node: the image the Job's pod runs, and the registry Secret the Job mounts
    (what a platform team creates once in the builds namespace); None with kwok."""
    if kube_control_plane.node_kind != "real":
        return None
    images: NodeImages = request.getfixturevalue("node_images")
    secret = docker_config_secret(images.registry, "builder", "not-used-by-the-stand-in")
    secret["metadata"]["name"] = KanikoSettings().registry_secret
    kube_control_plane.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(secret))
    return images.image


def _kubelet_log(plane: ControlPlane) -> Path:
    """The file kwok serves as every container's log (scripts/services/kubernetes.sh)."""
    return plane.kubeconfig.parent / "container.log"


def _request() -> BuildRequest:
    return BuildRequest(image=IMAGE, registry=RegistryAccess("registry.example.com/team"),
                        dockerfile_text="FROM busybox\nRUN make\n",
                        source_url="https://git.example.com/acme/web.git",
                        commit="0123456789ab" + "0" * 28, ref_name="refs/heads/main")


def _play_kubelet(plane: ControlPlane, namespace: str, succeed: bool,
                  job: str | None = None) -> threading.Thread:
    """Once the job controller made the pod (and the scheduler bound it): the container ran
    and ended, as a kubelet would report it; Kaniko's log goes to the kubelet's log file."""

    def run() -> None:
        deadline = time.monotonic() + 60
        pod: dict[str, Any] | None = None
        while pod is None and time.monotonic() < deadline:
            selector = f"job-name={job}" if job else "job-name"
            listed = json.loads(plane.kubectl("get", "pods", "-n", namespace, "-l", selector,
                                              "-o", "json").stdout)["items"]
            pod = next((p for p in listed if p["spec"].get("nodeName")), None)
            time.sleep(0.2)
        if pod is None:
            return
        if not succeed:
            with _kubelet_log(plane).open("a") as log:
                for line in KANIKO_LOG:
                    log.write(f"2026-01-01T00:00:00.000000000Z stdout F {line}\n")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {"phase": "Succeeded" if succeed else "Failed", "startTime": now,
                  "containerStatuses": [{
                      "name": "kaniko", "image": "kaniko", "imageID": "", "ready": False,
                      "restartCount": 0, "state": {"terminated": {
                          "exitCode": 0 if succeed else 1,
                          "reason": "Completed" if succeed else "Error",
                          "message": DIGEST if succeed else "", "startedAt": now,
                          "finishedAt": now}}}]}
        plane.kubectl("patch", "pod", "-n", namespace, pod["metadata"]["name"],
                      "--subresource=status", "--type=merge", "-p",
                      json.dumps({"status": status}))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_kaniko_job_succeeds_and_returns_the_digest(
    kube_control_plane: ControlPlane, namespace: str, api_client: Any,
    monkeypatch: pytest.MonkeyPatch, real_executor: str | None,
) -> None:
    builder = KanikoJobBuilder(KanikoSettings(namespace=namespace),
                               submit=KanikoJobRunner(api_client, poll_seconds=0.2,
                                                      timeout_seconds=90))
    _unmanaged_pods(builder, monkeypatch, real_executor and (real_executor, True))
    kubelet = None if real_executor else _play_kubelet(kube_control_plane, namespace,
                                                       succeed=True, job=job_name(IMAGE))
    result = builder.build_and_push(_request(), logging.getLogger("test.kaniko"))
    if kubelet:
        kubelet.join(5)
    assert result.digest == DIGEST
    job = json.loads(kube_control_plane.kubectl("get", "job", "-n", namespace,
                                                job_name(IMAGE), "-o", "json").stdout)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--destination={IMAGE}" in args
    left = kube_control_plane.kubectl("get", "configmap", "-n", namespace, job_name(IMAGE),
                                      check=False)
    assert left.returncode != 0 and "NotFound" in left.stderr  # cleaned up


def test_kaniko_job_failure_names_the_step(kube_control_plane: ControlPlane, namespace: str,
                                           api_client: Any, monkeypatch: pytest.MonkeyPatch,
                                           real_executor: str | None) -> None:
    if not real_executor and not _kubelet_log(kube_control_plane).exists():
        pytest.skip("writes the simulated kubelet's log file: needs the control plane of "
                    "scripts/services/kubernetes.sh (ENVFORGE_TEST_KUBECONFIG=DIR/kubeconfig)")
    builder = KanikoJobBuilder(KanikoSettings(namespace=namespace),
                               submit=KanikoJobRunner(api_client, poll_seconds=0.2,
                                                      timeout_seconds=90))
    _unmanaged_pods(builder, monkeypatch, real_executor and (real_executor, False))
    kubelet = None if real_executor else _play_kubelet(kube_control_plane, namespace,
                                                       succeed=False, job=job_name(IMAGE))
    with pytest.raises(ImageBuildFailedError) as caught:
        builder.build_and_push(_request(), logging.getLogger("test.kaniko"))
    if kubelet:
        kubelet.join(5)
    assert caught.value.step == "RUN make"
    assert "main.c:1: error: expected ';'" in caught.value.last_lines


def test_build_image_with_the_kaniko_builder_from_kubeconfig(
    kube_control_plane: ControlPlane, namespace: str, make_repo: Callable[..., Path],
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    real_executor: str | None,
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kube_control_plane.kubeconfig))
    monkeypatch.setenv("ENVFORGE_KANIKO_NAMESPACE", namespace)
    builder = kaniko_builder()
    assert isinstance(builder, KanikoJobBuilder)
    assert isinstance(builder._submit, KanikoJobRunner)
    builder._submit.poll_seconds = 0.2
    _unmanaged_pods(builder, monkeypatch, real_executor and (real_executor, True))
    bare = make_repo({"index.html": "x\n"})
    spec = ImageBuildSpec(repo_url=bare.as_uri(), ref="main", app="web")
    # the Job is named after the tag, which depends on the commit: take any job's pod
    kubelet = None if real_executor else _play_kubelet(kube_control_plane, namespace,
                                                       succeed=True)
    built = build_image(spec, registry.access, builder, GitSourceCache(tmp_path / "src"),
                        logging.getLogger("test.kaniko"))
    if kubelet:
        kubelet.join(5)
    assert built.digest == DIGEST and not built.cached and built.stack == "static"
    assert not (tmp_path / "src" / "worktrees").exists()  # Kaniko clones for itself
