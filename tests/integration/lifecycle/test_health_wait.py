"""create-environment waits for Argo CD: healthy is success; never healthy is a rollback with
the pods' events and log lines in the summary. The stand-in plays the cluster, and a thread
plays Argo CD (it reports the environment once its Application file is in Git)."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from envforge.errors import EnvironmentNotHealthyError, StepFailedError
from tests.helpers import git, remote_files
from tests.standins.cluster_objects import application, seed_environment
from tests.standins.kubernetes import KubernetesStandin

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


@contextmanager
def argocd(standin: KubernetesStandin, remote: Path, name: str, healthy: bool) -> Iterator[None]:
    """Once argocd/<name>.yaml is on the remote, report the environment as synced to that
    commit, healthy or crash-looping (bounded: gives up after 60 s)."""
    stop = threading.Event()

    def play() -> None:
        for _ in range(600):
            if stop.wait(0.1):
                return
            if f"argocd/{name}.yaml" in remote_files(remote):
                head = git("--git-dir", str(remote), "rev-parse", "main")
                seed_environment(standin, name, healthy=healthy)
                app = application(name, revision=head,
                                  health="Healthy" if healthy else "Degraded")
                standin.set_status("argoproj.io", "applications", "argocd", name, app["status"])
                return

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def test_healthy_environment_completes(prefect_server: None, gitops: Path, kubeconfig: Path,
                                       kube_standin: KubernetesStandin) -> None:
    from flows.environments import create_environment

    with argocd(kube_standin, gitops, "pr-21", healthy=True):
        result = create_environment("pr-21", template="python-service", wait_healthy=True,
                                    wait_timeout_seconds=60)
    steps = {s["id"]: s["status"] for s in result["run"]["steps"]}
    assert steps["wait-healthy"] == "completed"
    assert "environments/pr-21/environment.yaml" in remote_files(gitops)


def test_never_healthy_rolls_back_with_a_diagnosis(prefect_server: None, gitops: Path,
                                                   kubeconfig: Path,
                                                   kube_standin: KubernetesStandin) -> None:
    from prefect.client.orchestration import get_client

    from flows.environments import create_environment

    before = git("--git-dir", str(gitops), "rev-parse", "main")
    with argocd(kube_standin, gitops, "pr-22", healthy=False), \
            pytest.raises(StepFailedError) as info:
        create_environment("pr-22", template="python-service", wait_healthy=True,
                           wait_timeout_seconds=8)
    assert info.value.step_id == "wait-healthy"
    assert isinstance(info.value.__cause__, EnvironmentNotHealthyError)
    assert "environment" in info.value.rolled_back  # the publish:gitops step was undone
    assert not any(f.startswith("environments/pr-22/") for f in remote_files(gitops))
    assert git("--git-dir", str(gitops), "rev-parse", "main") == before  # commit dropped
    assert "CrashLoopBackOff" in info.value.__cause__.diagnosis

    # the run's summary artifact tells the person what went wrong in the cluster
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["env-pr-22"])))
    assert artifacts
    markdown = str(artifacts[-1].data)
    assert "rolled-back" in markdown and "CrashLoopBackOff" in markdown
