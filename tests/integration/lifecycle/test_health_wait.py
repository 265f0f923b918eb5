"""create-environment waits for Argo CD: healthy is success; never healthy is a rollback with
the pods' events in the summary. The real API server is the cluster, the real Argo CD
syncs the GitOps remote into it (app-of-apps), and its real node runs the pods: python-service's
Deployment pulls ``<imageRegistry>/<name>:latest`` from the session's registry, where the test
pushed a small image that serves /healthz, or one that exits at start and so crash-loops
(tests/integration/cluster/real_node.py). With kwok (ENVFORGE_NODE=kwok, not root) the
``envforge.dev/simulate: CrashLoopBackOff`` annotation plays the crash."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from envforge.core.config import PROJECT_ROOT
from envforge.errors import EnvironmentNotHealthyError, StepFailedError
from tests.helpers import git, remote_files
from tests.integration.cluster.real_node import (  # noqa: F401  (the session's images)
    NodeImages,
    node_images,
    publish_image,
)
from tests.kube import ControlPlane

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _get(plane: ControlPlane, *args: str) -> dict[str, Any] | None:
    done = plane.kubectl("get", *args, "-o", "json", check=False)
    if done.returncode != 0:
        assert "NotFound" in done.stderr, done.stderr
        return None
    return dict(json.loads(done.stdout))


def _image_for(plane: ControlPlane, request: pytest.FixtureRequest, name: str,
               archive: str) -> dict[str, Any]:
    """python-service's parameters naming the session registry, where ``name:latest`` is the
    cached ``web`` or ``crash`` image (a real node pulls it); none with kwok."""
    if plane.node_kind != "real":
        return {}
    images: NodeImages = request.getfixturevalue("node_images")
    publish_image(images, archive, f"{name}:latest")
    return {"imageRegistry": images.registry}


def _crash_looping_templates(tmp_path: Path) -> Path:
    """A copy of python-service whose pods kwok crash-loops (ENVFORGE_NODE=kwok only)."""
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates" / "python-service",
                    templates / "python-service")
    manifest = templates / "python-service" / "skeleton" / "manifests" / "deployment.yaml"
    text = manifest.read_text()
    marker = "  template:\n    metadata:\n"
    assert marker in text
    manifest.write_text(text.replace(
        marker, marker + "      annotations:\n        envforge.dev/simulate: CrashLoopBackOff\n"))
    return templates


def test_healthy_environment_completes_and_destroy_prunes_it(
        prefect_server: None, gitops: Path, argocd: str,
        kube_control_plane: ControlPlane, request: pytest.FixtureRequest) -> None:
    from flows.environments import create_environment, destroy_environment

    name = _name("hw")
    result = create_environment(name, template="python-service", wait_healthy=True,
                                wait_timeout_seconds=120, parameters=_image_for(
                                    kube_control_plane, request, name, "web"))
    steps = {s["id"]: s["status"] for s in result["run"]["steps"]}
    assert steps["wait-healthy"] == "completed"
    head = git("--git-dir", str(gitops), "rev-parse", "main")
    app = _get(kube_control_plane, "application", "-n", "argocd", name)
    assert app is not None
    assert app["status"]["sync"] == {**app["status"]["sync"], "status": "Synced",
                                     "revision": head}
    assert app["status"]["health"]["status"] == "Healthy"
    deployment = _get(kube_control_plane, "deployment", "-n", name, name)
    assert deployment is not None
    available = [c for c in deployment["status"]["conditions"] if c["type"] == "Available"]
    assert available and available[0]["status"] == "True"

    destroy_environment(name)
    assert not any(f.startswith(f"environments/{name}/") for f in remote_files(gitops))
    # the app-of-apps prunes the Application; its finalizer deletes the Namespace, which the
    # namespace controller empties (Terminating) before it goes; then the Application goes
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
            _get(kube_control_plane, "application", "-n", "argocd", name) is not None):
        time.sleep(1)
    assert _get(kube_control_plane, "application", "-n", "argocd", name) is None
    assert _get(kube_control_plane, "namespace", name) is None


def test_never_healthy_rolls_back_with_a_diagnosis(prefect_server: None, gitops: Path,
                                                   argocd: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   kube_control_plane: ControlPlane,
                                                   request: pytest.FixtureRequest) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.environments import create_environment

    name = _name("nh")
    parameters = _image_for(kube_control_plane, request, name, "crash")
    if not parameters:
        monkeypatch.setenv("ENVFORGE_TEMPLATES_PATH", str(_crash_looping_templates(tmp_path)))
    before = git("--git-dir", str(gitops), "rev-parse", "main")
    with pytest.raises(StepFailedError) as info:
        create_environment(name, template="python-service", wait_healthy=True,
                           wait_timeout_seconds=60, parameters=parameters)
    assert info.value.step_id == "wait-healthy"
    assert isinstance(info.value.__cause__, EnvironmentNotHealthyError)
    assert "environment" in info.value.rolled_back  # the publish:gitops step was undone
    assert not any(f.startswith(f"environments/{name}/") for f in remote_files(gitops))
    assert git("--git-dir", str(gitops), "rev-parse", "main") == before  # commit dropped
    assert "CrashLoopBackOff" in info.value.__cause__.diagnosis

    # the run's summary artifact tells the person what went wrong in the cluster
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"env-{name}"])))
    assert artifacts
    markdown = str(artifacts[-1].data)
    assert "rolled-back" in markdown and "CrashLoopBackOff" in markdown

    # the rollback left Git; Argo CD prunes the Application, whose finalizer deletes the
    # Namespace: a real one is Terminating for a while, then gone
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
            _get(kube_control_plane, "namespace", name) is not None):
        namespace = _get(kube_control_plane, "namespace", name)
        assert namespace is None or namespace["status"]["phase"] in ("Active", "Terminating")
        time.sleep(1)
    assert _get(kube_control_plane, "namespace", name) is None
