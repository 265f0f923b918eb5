"""The API server stops: a private control plane per test (the session's keeps running for
the other tests) is stopped under envforge. Reads give up after a bounded number of failed
polls with a temporary ClusterConnectionError naming what was being done; the server-side dry
run refuses to let manifests through unchecked (nothing reaches Git)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envforge.actions.base import ActionContext
from envforge.cluster.actions import ArgoCDWait, ArgoCDWaitInput
from envforge.errors import ClusterConnectionError, TemporaryError
from tests.integration.cluster.conftest import (
    ClusterUnderTest,
    application_status,
    seed_environment,
)
from tests.kube import ControlPlane, start_control_plane, stop_control_plane
from tests.services_fixtures import make_services

pytestmark = pytest.mark.slow  # a control plane of its own: ~15 s


@pytest.fixture
def private_plane() -> Iterator[ControlPlane]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("ENVFORGE_TEST_KUBECONFIG", raising=False)  # never stop the shared one
        try:
            # the API server is what these tests stop: no node (its pods stay Pending)
            plane = start_control_plane(node="none")
        except RuntimeError as e:
            pytest.fail(str(e))
    assert plane.started_here
    try:
        yield plane
    finally:
        stop_control_plane(plane)


def stop_api_server(plane: ControlPlane) -> None:
    """SIGTERM to the kube-apiserver this test started (by its pid file)."""
    assert plane.started_here and plane.state_dir is not None
    os.kill(int((plane.state_dir / "pids" / "kube-apiserver").read_text()), signal.SIGTERM)


def test_api_server_stopped_during_a_wait_and_before_a_commit(
        private_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(private_plane.kubeconfig))
    cluster = ClusterUnderTest(private_plane)
    name = "stopped-1"
    seed_environment(cluster, name, wait=False, status=application_status(
        "OutOfSync", "Progressing", phase="Running", message="syncing"))

    def api_server_goes_away() -> None:
        time.sleep(1.5)
        stop_api_server(private_plane)

    stopper = threading.Thread(target=api_server_goes_away)
    stopper.start()
    context = ActionContext(services=make_services(), run_id="r1", step_id="wait", template_name="t",
                            template_dir=tmp_path, workspace=tmp_path,
                            environment={"name": name, "namespace": name},
                            logger=logging.getLogger("test.argocd"))
    started = time.monotonic()
    with pytest.raises(ClusterConnectionError) as caught:
        ArgoCDWait().run(context, ArgoCDWaitInput(timeoutSeconds=120, pollSeconds=0.3))
    stopper.join()
    assert time.monotonic() - started < 60  # gave up after 3 failed reads, not at 120 s
    assert isinstance(caught.value, TemporaryError)  # Prefect retries it once, then rolls back
    message = str(caught.value)
    assert f"waiting for environment {name!r}" in message and "did not answer" in message

    # the same server, now gone, for the check before a commit: refused, not skipped
    from envforge.gitops import validate

    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "stopped-2"}}
    with pytest.raises(ClusterConnectionError, match="did not answer"):
        validate.validate_objects([("environments/stopped-2/ns.yaml", namespace)], "1.31",
                                  make_services().manifest_checks)


def test_api_server_stopped_mid_create_rolls_the_commit_back(
        private_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    """`envforge env create --wait`, inline: publish:gitops commits (the server-side dry run
    passes while the server is up), then the API server stops as the health wait starts. The
    wait fails (temporary, retried once), the run rolls back, and Git holds nothing of it."""
    from envforge.cluster import actions
    from envforge.core.config import load_settings
    from envforge.environments.lifecycle import (
        EnvironmentRequest,
        plan_environment,
        with_health_wait,
    )
    from envforge.errors import StepFailedError
    from envforge.gitops.repository import open_store
    from envforge.run.runner import TemplateRun
    from envforge.templating.loader import TemplateCatalog

    monkeypatch.setenv("KUBECONFIG", str(private_plane.kubeconfig))
    real_open_cluster = actions.open_cluster

    def api_server_stops_now(connections: Any, block: str | None = None) -> object:
        stop_api_server(private_plane)
        return real_open_cluster(connections, block)

    monkeypatch.setattr(actions, "open_cluster", api_server_stops_now)
    monkeypatch.setattr(actions.ArgoCDWait, "retry_delay_seconds", 0.1)
    name = "midcreate-1"
    services = make_services()
    plan = with_health_wait(plan_environment(
        EnvironmentRequest(name=name, template="python-service"),
        TemplateCatalog(load_settings().templates_path), services), 60)
    run = TemplateRun(plan.template, plan.parameters, environment=plan.environment,
                      services=services)
    try:
        with pytest.raises(StepFailedError) as caught:
            run.run()
    finally:
        run.close()
    assert caught.value.step_id == "wait-healthy"
    assert isinstance(caught.value.__cause__, ClusterConnectionError)
    assert caught.value.rolled_back  # the publish:gitops commit was taken back
    with open_store() as store:
        assert store.find(name) is None
