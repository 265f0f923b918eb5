"""Vault and Kubernetes for the secrets integration tests: the real ones when VAULT_ADDR and
VAULT_TOKEN (or KUBECONFIG) are set, otherwise the local stand-ins, started once per session on
free ports. The summary at the end of the run says which were used."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import pytest

from tests.standins.kubernetes import KubernetesStandin, start_kubernetes_standin
from tests.standins.vault import VaultStandin, start_vault_standin

USED: dict[str, str] = {}


@dataclass
class VaultTarget:
    """The Vault under test and how to seed it, stand-in or real."""

    address: str
    root_token: str
    standin: VaultStandin | None
    mount: str = "kv"
    prefix: str = field(default_factory=lambda: f"envforge-test-{uuid.uuid4().hex[:8]}")

    def admin(self) -> hvac.Client:
        return hvac.Client(url=self.address, token=self.root_token)

    def put_secret(self, path: str, data: dict[str, Any], mount: str | None = None) -> None:
        mount = mount or self.mount
        client = self.admin()
        if mount == "kv1":
            client.secrets.kv.v1.create_or_update_secret(path=path, secret=data,
                                                         mount_point=mount)
        else:
            client.secrets.kv.v2.create_or_update_secret(path=path, secret=data,
                                                         mount_point=mount)

    def token_for(self, patterns: list[str], ttl: int = 3600) -> str:
        """A token whose policy allows reading only the given API path globs."""
        if self.standin is not None:
            return self.standin.state.add_token(patterns, ttl=ttl)
        client = self.admin()
        name = f"envforge-test-{uuid.uuid4().hex[:8]}"
        rules = "\n".join(f'path "{p}" {{ capabilities = ["read", "list"] }}' for p in patterns)
        client.sys.create_or_update_policy(name=name, policy=rules)
        created = client.auth.token.create(policies=[name], ttl=f"{ttl}s", renewable=True)
        return str(created["auth"]["client_token"])


@pytest.fixture(scope="session")
def vault_service() -> Iterator[VaultTarget]:
    address, token = os.environ.get("VAULT_ADDR"), os.environ.get("VAULT_TOKEN")
    if address and token:
        USED["Vault"] = f"real Vault at {address} (VAULT_ADDR)"
        target = VaultTarget(address, token, None)
        client = target.admin()
        mounts = client.sys.list_mounted_secrets_engines()["data"]
        if "kv/" not in mounts:
            client.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
        if "kv1/" not in mounts:
            client.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
        yield target
        return
    standin = start_vault_standin()
    USED["Vault"] = f"stand-in at {standin.url} (set VAULT_ADDR and VAULT_TOKEN for a real one)"
    try:
        yield VaultTarget(standin.url, standin.root_token, standin)
    finally:
        standin.stop()


@pytest.fixture
def vault_target(vault_service: VaultTarget) -> VaultTarget:
    """The session's Vault, with a path prefix of this test's own."""
    return dataclasses.replace(vault_service, prefix=f"envforge-test-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def vault_standin(vault_target: VaultTarget) -> VaultStandin:
    """For faults only the stand-in can produce (sealing, login roles)."""
    if vault_target.standin is None:
        pytest.skip("needs the Vault stand-in (seals it or adds login roles); a real Vault "
                    "is configured through VAULT_ADDR")
    return vault_target.standin


@dataclass
class ClusterTarget:
    """The Kubernetes API under test: a kubeconfig file, and the stand-in when it is one."""

    kubeconfig: Path
    standin: KubernetesStandin | None


@pytest.fixture(scope="session")
def cluster_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTarget]:
    existing = os.environ.get("KUBECONFIG")
    if existing:
        USED["Kubernetes"] = f"real cluster from KUBECONFIG={existing}"
        yield ClusterTarget(Path(existing), None)
        return
    standin = start_kubernetes_standin()
    kubeconfig = standin.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")
    USED["Kubernetes"] = f"stand-in at {standin.url} (set KUBECONFIG for a real cluster)"
    try:
        yield ClusterTarget(kubeconfig, standin)
    finally:
        standin.stop()


@pytest.fixture
def kubernetes_standin(cluster_target: ClusterTarget) -> KubernetesStandin:
    """For faults only the stand-in can produce (dropping connections mid-delivery)."""
    if cluster_target.standin is None:
        pytest.skip("needs the Kubernetes stand-in (injects faults); KUBECONFIG points at a "
                    "real cluster")
    return cluster_target.standin


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for service, how in sorted(USED.items()):
        terminalreporter.write_line(f"secrets integration tests: {service} = {how}")
