"""The lifecycle flows on a real temporary Prefect server and a real Git remote (and, where a
test asks for ``argocd``, the real API server that the real Argo CD syncs it into)."""

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from envforge.errors import EnvironmentNotFoundError, ParameterError
from tests.helpers import git, remote_files
from tests.integration.cluster.real_node import node_images, publish_image  # noqa: F401
from tests.kube import ControlPlane

pytestmark = pytest.mark.prefect


def _env_files(remote: Path, name: str) -> list[str]:
    return [f for f in remote_files(remote)
            if f.startswith(f"environments/{name}/") or f == f"argocd/{name}.yaml"]


def test_create_update_extend_destroy(prefect_server: None, gitops: Path, argocd: str,
                                      kube_control_plane: ControlPlane,
                                      request: pytest.FixtureRequest) -> None:
    """Through Git, and what Argo CD makes of each commit on the real API
    server: the update's replicas, then the destroy's prune. On the real node the pods pull
    ``<name>:latest`` from the session's registry (a small web image)."""
    from flows.environments import (
        create_environment,
        destroy_environment,
        extend_environment,
    )

    name = f"pr-7-{uuid.uuid4().hex[:6]}"
    registry: dict[str, object] = {}
    if kube_control_plane.node_kind == "real":
        images = request.getfixturevalue("node_images")
        publish_image(images, "web", f"{name}:latest")
        registry = {"imageRegistry": images.registry}
    created = create_environment(name, template="python-service",
                                 parameters={"replicas": 1, **registry}, ttl="2h",
                                 source={"repository": "https://git.example/app.git",
                                         "pullRequest": 7})
    assert created["mode"] == "create" and created["url"].startswith(f"https://{name}-")
    files = _env_files(gitops, name)
    assert f"environments/{name}/environment.yaml" in files and f"argocd/{name}.yaml" in files
    record = git("--git-dir", str(gitops), "show", f"main:environments/{name}/environment.yaml")
    assert "pullRequest: 7" in record and "template: python-service" in record

    updated = create_environment(name, parameters={"replicas": 3, **registry})
    assert updated["mode"] == "update" and updated["commit"]
    assert updated["url"] == created["url"]  # the host stays for the environment's life
    deployment = git("--git-dir", str(gitops), "show",
                     f"main:environments/{name}/manifests/deployment.yaml")
    assert "replicas: 3" in deployment
    _wait(lambda: _replicas(kube_control_plane, name) == 3, "the update to be synced")

    again = create_environment(name, parameters={"replicas": 3, **registry})
    assert again["commit"] is None  # unchanged: no commit

    extended = extend_environment(name, ttl="48h")
    assert extended["commit"]

    destroy_environment(name)
    assert _env_files(gitops, name) == []
    _wait(lambda: kube_control_plane.kubectl("get", "namespace", name, check=False)
          .returncode != 0, "Argo CD to prune the namespace")


def _replicas(plane: ControlPlane, name: str) -> int | None:
    done = plane.kubectl("get", "deployment", "-n", name, name, "-o",
                         "jsonpath={.spec.replicas}", check=False)
    return int(done.stdout) if done.returncode == 0 and done.stdout else None


def _wait(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def test_bad_parameters_fail_before_any_commit(prefect_server: None, gitops: Path) -> None:
    from flows.environments import create_environment

    before = git("--git-dir", str(gitops), "rev-parse", "main")
    with pytest.raises(ParameterError, match=r"\$\.replicas"):
        create_environment("pr-8", template="python-service", parameters={"replicas": 99})
    assert git("--git-dir", str(gitops), "rev-parse", "main") == before


def test_destroying_a_missing_environment_is_a_clear_error(prefect_server: None,
                                                          gitops: Path) -> None:
    from flows.environments import destroy_environment

    with pytest.raises(EnvironmentNotFoundError, match="pr-404"):
        destroy_environment("pr-404")


def test_one_run_per_environment_name_at_a_time(prefect_server: None, gitops: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """While a run holds pr-9, a second run for pr-9 waits and then gives up, saying why;
    a run for another environment is not held up."""
    from envforge.errors import EnvironmentLockTimeoutError
    from flows.environments import create_environment, environment_lock
    from tests.services_fixtures import make_services

    monkeypatch.setenv("ENVFORGE_ENV_LOCK_TIMEOUT", "2")
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with environment_lock("pr-9", make_services()):
            holding.set()
            release.wait(timeout=60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(timeout=30)
        started = time.monotonic()
        with pytest.raises(EnvironmentLockTimeoutError, match="'pr-9' is being changed"):
            create_environment("pr-9", template="python-service")
        assert time.monotonic() - started >= 2
        other = create_environment("pr-10", template="python-service")  # not blocked
        assert other["mode"] == "create"
    finally:
        release.set()
        holder.join(timeout=30)
    assert _env_files(gitops, "pr-9") == []


def test_reaper_destroys_expired_and_keeps_the_rest(prefect_server: None, gitops: Path) -> None:
    from flows.environments import create_environment, reap_environments

    create_environment("short-lived", template="python-service", ttl="1s")
    create_environment("long-lived", template="python-service", ttl="48h")
    time.sleep(1.5)
    dry = reap_environments(dry_run=True)
    assert dry["destroyed"] == [] and _env_files(gitops, "short-lived")
    result = reap_environments()
    assert result["destroyed"] == ["short-lived"]
    assert _env_files(gitops, "short-lived") == []
    assert _env_files(gitops, "long-lived")


def test_bind_domain_refuses_a_host_another_environment_has(prefect_server: None,
                                                            gitops: Path) -> None:
    from envforge.errors import DomainConflictError
    from flows.environments import bind_domain, create_environment

    create_environment("shop-a", template="python-service")
    create_environment("shop-b", template="python-service")
    bound = bind_domain("shop-a", "shop.example.com")
    assert bound["commit"] and bound["url"] == "https://shop.example.com"
    ingresses = [f for f in _env_files(gitops, "shop-a") if "envforge-domain-" in f]
    assert len(ingresses) == 1
    assert "host: shop.example.com" in git("--git-dir", str(gitops), "show",
                                           f"main:{ingresses[0]}")
    assert bind_domain("shop-a", "shop.example.com")["commit"] is None  # already bound
    head = git("--git-dir", str(gitops), "rev-parse", "main")
    with pytest.raises(DomainConflictError, match="shop-a"):
        bind_domain("shop-b", "shop.example.com")
    assert git("--git-dir", str(gitops), "rev-parse", "main") == head
