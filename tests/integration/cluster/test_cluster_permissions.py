"""Credentials without the rights: a ServiceAccount token bound to a narrow Role on the real
API server. Every refusal is one line naming the verb and the resource, and is permanent
(never retried)."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.cluster import shell
from envforge.cluster.actions import ArgoCDWait, ArgoCDWaitInput
from envforge.cluster.client import open_cluster
from envforge.errors import ClusterAccessError, TemporaryError
from tests.integration.cluster.conftest import ClusterUnderTest, seed_environment
from tests.services_fixtures import make_services

ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader, namespace: {ns}}}
rules:
- apiGroups: [""]
  resources: [pods, pods/log]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: pod-reader, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}}
subjects:
- {{kind: ServiceAccount, name: narrow, namespace: {ns}}}
"""


@pytest.fixture
def narrow_token(cluster: ClusterUnderTest, env_name: str, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """KUBECONFIG now authenticates as ServiceAccount ``narrow`` of the environment's
    namespace, which may only get/list pods and read their logs there."""
    seed_environment(cluster, env_name)
    plane = cluster.plane
    plane.kubectl("-n", env_name, "create", "serviceaccount", "narrow")
    plane.kubectl("apply", "-f", "-", stdin=ROLE.format(ns=env_name))
    token = plane.kubectl("-n", env_name, "create", "token", "narrow",
                          "--duration=10m").stdout.strip()
    config = plane.kubeconfig_for_token(token, tmp_path / "narrow.kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(config))
    yield token


def ctx(tmp_path: Path, name: str) -> ActionContext:
    return ActionContext(services=make_services(), run_id="r1", step_id="wait", template_name="t", template_dir=tmp_path,
                         workspace=tmp_path, environment={"name": name, "namespace": name},
                         logger=logging.getLogger("test.argocd"))


def test_reading_what_the_role_does_not_allow_names_verb_and_resource(
        narrow_token: str, env_name: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ClusterAccessError) as caught:
        ArgoCDWait().run(ctx(tmp_path, env_name),
                         ArgoCDWaitInput(timeoutSeconds=60, pollSeconds=0.2))
    assert time.monotonic() - started < 5  # refused at once: not waited out, not retried
    message = str(caught.value)
    assert not isinstance(caught.value, TemporaryError)
    assert "403 Forbidden" in message and "\n" not in message
    assert 'cannot get resource "applications" in API group "argoproj.io"' in message
    assert "system:serviceaccount:" + env_name + ":narrow" in message
    assert narrow_token not in message


def test_a_refused_exec_handshake_is_a_permission_problem(narrow_token: str,
                                                          env_name: str) -> None:
    with open_cluster(make_services().connections) as reader:
        pod = reader.pods(env_name)[0]["metadata"]["name"]  # allowed: list pods
        assert reader.pod_log(env_name, pod, "app", 1)  # allowed: pods/log
        with pytest.raises(ClusterAccessError) as caught:
            client = shell.open_exec(reader, env_name, pod, "app", ["true"], False)
            shell.pump(client, io.BytesIO(), io.BytesIO(), io.BytesIO())
    message = str(caught.value)
    assert f"exec into pod {env_name}/{pod}" in message and "403" in message
    assert "TLS" not in message and not isinstance(caught.value, TemporaryError)
    assert narrow_token not in message
