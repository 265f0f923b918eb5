"""The API server stops: a private control plane of this module (the session's keeps running
for the other tests) is stopped under envforge. Reads give up after a bounded number of failed
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

pytestmark = pytest.mark.slow  # a control plane of its own: ~15 s


@pytest.fixture(scope="module")
def private_plane() -> Iterator[ControlPlane]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("ENVFORGE_TEST_KUBECONFIG", raising=False)  # never stop the shared one
        try:
            plane = start_control_plane()
        except RuntimeError as e:
            pytest.fail(str(e))
    assert plane.started_here
    try:
        yield plane
    finally:
        stop_control_plane(plane)


def test_api_server_stopped_during_a_wait_and_before_a_commit(
        private_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(private_plane.kubeconfig))
    cluster = ClusterUnderTest(private_plane)
    name = "stopped-1"
    seed_environment(cluster, name, wait=False, status=application_status(
        "OutOfSync", "Progressing", phase="Running", message="syncing"))

    def api_server_goes_away() -> None:
        time.sleep(1.5)
        assert private_plane.state_dir is not None
        pid = int((private_plane.state_dir / "pids" / "kube-apiserver").read_text())
        os.kill(pid, signal.SIGTERM)  # a process this test session started

    stopper = threading.Thread(target=api_server_goes_away)
    stopper.start()
    context = ActionContext(run_id="r1", step_id="wait", template_name="t",
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
    from envforge.cluster.dry_run import enable_server_dry_run
    from envforge.gitops import validate

    monkeypatch.setattr(validate, "_server_checks", [])
    enable_server_dry_run()
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "stopped-2"}}
    with pytest.raises(ClusterConnectionError, match="did not answer"):
        validate.validate_objects([("environments/stopped-2/ns.yaml", namespace)], "1.31")
