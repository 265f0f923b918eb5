"""Vault and Kubernetes for the secrets integration tests: a Vault of your own when
ENVFORGE_TEST_VAULT_ADDR and ENVFORGE_TEST_VAULT_TOKEN are set, otherwise a real OpenBao dev server (tests/openbao.py, started once per
session on a free port); Kubernetes is always a real API server, the session's (tests/kube.py).
The summary at the end of the run says which were used."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import pytest

from tests.helpers import started
from tests.kube import ControlPlane
from tests.openbao import OpenBao, create_read_token, put_kv_secret, start_openbao

USED: dict[str, str] = {}


@dataclass
class VaultTarget:
    """The Vault under test and how to seed it: the session's OpenBao (``bao``), or a Vault
    of your own (``bao`` None)."""

    address: str
    root_token: str
    bao: OpenBao | None
    mount: str = "kv"
    prefix: str = field(default_factory=lambda: f"envforge-test-{uuid.uuid4().hex[:8]}")

    def admin(self) -> hvac.Client:
        return hvac.Client(url=self.address, token=self.root_token)

    def put_secret(self, path: str, data: dict[str, Any], mount: str | None = None) -> None:
        put_kv_secret(self.admin(), path, data, mount or self.mount)

    def token_for(self, patterns: list[str], ttl: int = 3600) -> str:
        """A token whose policy allows reading only the given API path globs."""
        return create_read_token(self.admin(), patterns, ttl)


@pytest.fixture(scope="session")
def vault_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultTarget]:
    # A Vault of your own is named for the tests explicitly (as ENVFORGE_TEST_KUBECONFIG names a
    # cluster): a VAULT_ADDR left in the shell (the demo's env.sh, a real deployment) is never
    # written to by the suite.
    address = os.environ.get("ENVFORGE_TEST_VAULT_ADDR")
    token = os.environ.get("ENVFORGE_TEST_VAULT_TOKEN")
    if address and token:
        USED["Vault"] = f"real Vault at {address} (ENVFORGE_TEST_VAULT_ADDR)"
        target = VaultTarget(address, token, None)
        client = target.admin()
        mounts = client.sys.list_mounted_secrets_engines()["data"]
        if "kv/" not in mounts:
            client.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
        if "kv1/" not in mounts:
            client.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
        yield target
        return
    with started(lambda: start_openbao(tmp_path_factory.mktemp("openbao")),
                 OpenBao.stop) as bao:
        USED["Vault"] = (f"OpenBao dev server at {bao.address} (scripts/services/openbao.sh; "
                         "set ENVFORGE_TEST_VAULT_ADDR and ENVFORGE_TEST_VAULT_TOKEN for a Vault "
                         "of your own)")
        yield VaultTarget(bao.address, bao.root_token, bao)


@pytest.fixture
def vault_target(vault_service: VaultTarget) -> VaultTarget:
    """The session's Vault, with a path prefix of this test's own."""
    return dataclasses.replace(vault_service, prefix=f"envforge-test-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def openbao(vault_target: VaultTarget) -> OpenBao:
    """The session's OpenBao itself, for what a test may not do to a Vault of your own
    (sealing it, adding login roles, reading its audit log)."""
    if vault_target.bao is None:
        pytest.skip("seals Vault, adds login roles or reads its audit log: only done to the "
                    "session's OpenBao, not to a Vault given through ENVFORGE_TEST_VAULT_ADDR")
    return vault_target.bao


@dataclass
class ClusterTarget:
    """The Kubernetes API under test: the session's real API server and its kubeconfig."""

    kubeconfig: Path
    plane: ControlPlane

    def narrow_kubeconfig(self, path: Path, rules: list[dict[str, Any]]) -> Path:
        """A kubeconfig whose ServiceAccount token may only do what ``rules`` (a ClusterRole's
        rules) allow: for permission faults on the real server."""
        name = f"envforge-narrow-{uuid.uuid4().hex[:8]}"
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name}, "rules": rules}
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": name},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                               "name": name},
                   "subjects": [{"kind": "ServiceAccount", "name": name,
                                 "namespace": "default"}]}
        self.plane.kubectl("create", "serviceaccount", "-n", "default", name)
        self.plane.kubectl("apply", "-f", "-", stdin=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": [role, binding]}))
        token = self.plane.kubectl("create", "token", "-n", "default", name,
                                   "--duration=1h").stdout.strip()
        return self.plane.kubeconfig_for_token(token, path)

    def namespace_phase(self, name: str) -> str | None:
        """Active or Terminating, or None once the namespace is gone."""
        done = self.plane.kubectl("get", "namespace", name, "-o",
                                  "jsonpath={.status.phase}", check=False)
        if done.returncode != 0:
            assert "NotFound" in done.stderr, done.stderr
            return None
        return done.stdout

    def assert_namespace_going(self, name: str, seconds: float = 90) -> None:
        """A deleted namespace: gone, or Terminating (the namespace controller empties it
        first) and then gone within ``seconds``."""
        deadline = time.monotonic() + seconds
        phase = self.namespace_phase(name)
        while phase is not None:
            assert phase == "Terminating", f"namespace {name} is {phase}, not being deleted"
            assert time.monotonic() < deadline, f"namespace {name} still Terminating"
            time.sleep(1)
            phase = self.namespace_phase(name)


@pytest.fixture(scope="session")
def cluster_target(kube_control_plane: ControlPlane) -> ClusterTarget:
    USED["Kubernetes"] = f"real API server at {kube_control_plane.server}"
    return ClusterTarget(kube_control_plane.kubeconfig, kube_control_plane)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for service, how in sorted(USED.items()):
        terminalreporter.write_line(f"secrets integration tests: {service} = {how}")
