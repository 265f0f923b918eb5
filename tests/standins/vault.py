"""A small stand-in for HashiCorp Vault's HTTP API, for tests and demos (no Vault binary here).

Speaks the documented endpoints envforge uses, with Vault's response envelope and its
``{"errors": [...]}`` error bodies, so hvac drives it unchanged: KV v1 and v2 (``data/``,
``metadata/``, versions, soft delete), the token store (``auth/token/create``, ``lookup-self``,
``renew-self`` capped at the max TTL, ``revoke-self``, ``accessors``), ACL policies
(``sys/policy``, ``sys/policies/acl``, ``sys/capabilities-self``), AppRole and Kubernetes login,
``sys/health`` and ``sys/seal-status`` (503 while sealed).

Every request but logins and health is checked against the token's policies as Vault checks it
(tests/standins/vault_policy.py): capabilities per path, ``+`` and ``*`` globs with Vault's
priority rules, ``deny``, ``sudo`` on root-protected paths, and the ``default`` policy on every
non-root token; a refusal is Vault's 403 ``permission denied``. Conformance with a real Vault:
tests/integration/secrets/test_vault_policies.py (runs against one when VAULT_ADDR is set).
The KV engines live in vault_kv.py, token lifetimes in vault_tokens.py.

Run a demo server: ``python -m tests.standins.vault --port 8200`` (prints the root token).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.standins.vault_kv import KvEngines, VaultApiError
from tests.standins.vault_kv import envelope as _envelope
from tests.standins.vault_policy import (
    DEFAULT_POLICY,
    Acl,
    PolicyError,
    Rules,
    parse_duration,
    parse_policy,
)
from tests.standins.vault_tokens import (
    SYSTEM_MAX_TTL,
    RenewalRefused,
    Token,
    auth_block,
    lookup_data,
)

ROOT_TOKEN = "root-standin-token"
#: Vault's body for a request its ACL refuses (a bad or expired token gets the bare message).
ACL_DENIED = "1 error occurred:\n\t* permission denied\n\n"
#: Root-protected paths (Vault's "sudo" paths) the stand-in serves: sudo is needed besides.
ROOT_PROTECTED = ("auth/token/accessors/",)


class VaultState(KvEngines):
    """Everything the stand-in remembers; tests change it through these methods."""

    def __init__(self) -> None:
        super().__init__()
        self.sealed = False
        self.max_lease_ttl = SYSTEM_MAX_TTL
        self.policies: dict[str, tuple[str, Rules]] = {}
        self.tokens: dict[str, Token] = {}
        self.approles: dict[str, tuple[str, list[str], int]] = {}
        self.kubernetes_roles: dict[str, tuple[str, list[str], int]] = {}
        self.requests: list[tuple[str, str]] = []
        self.put_policy("default", DEFAULT_POLICY)
        self.add_token(["root"], ttl=0, renewable=False, token_id=ROOT_TOKEN, name="root")

    def put_policy(self, name: str, text: str) -> None:
        """Write an ACL policy (HCL or JSON); raises PolicyError as Vault answers 400."""
        with self.lock:
            self.policies[name.lower()] = (text, parse_policy(text))

    def acl(self, token: Token) -> Acl:
        return Acl(self.policies[p][1] for p in token.policies if p in self.policies)

    def add_token(self, policies: list[str], ttl: int = 3600, renewable: bool = True,
                  token_id: str | None = None, name: str = "token", explicit_max_ttl: int = 0,
                  no_default_policy: bool = False) -> str:
        """A token with these policies (plus ``default`` unless told, as Vault attaches it).

        An entry containing ``/`` is shorthand for a policy granting read and list on that path
        pattern, the policy ``token_for`` writes on a real Vault.
        """
        with self.lock:
            names = self._policy_names(policies)
            if "root" not in names and not no_default_policy:
                names = sorted({"default", *names})
            token = Token(token_id or f"hvs.{uuid.uuid4().hex}", names, ttl, renewable, name,
                          explicit_max_ttl=explicit_max_ttl, system_max_ttl=self.max_lease_ttl)
            self.tokens[token.id] = token
            return token.id

    def _policy_names(self, entries: list[str]) -> list[str]:
        names = []
        for entry in entries:
            if "/" in entry:
                name = f"standin-read-{hashlib.sha256(entry.encode()).hexdigest()[:10]}"
                self.put_policy(name, f'path "{entry}" {{ capabilities = ["read", "list"] }}')
                entry = name
            names.append(entry.lower())
        return names

    def add_approle(self, role_id: str, secret_id: str, policies: list[str], ttl: int = 3600
                    ) -> None:
        self.approles[role_id] = (secret_id, policies, ttl)

    def add_kubernetes_role(self, role: str, jwt: str, policies: list[str], ttl: int = 3600
                            ) -> None:
        self.kubernetes_roles[role] = (jwt, policies, ttl)

class VaultHandler(BaseHTTPRequestHandler):
    server_version = "VaultStandin/1.0"
    state: VaultState

    def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_LIST(self) -> None:
        self._dispatch("LIST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if method == "GET" and query.get("list") == "true":
            method = "LIST"
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
            if not url.path.startswith("/v1/"):
                raise VaultApiError(404, [])
            path = url.path[len("/v1/"):].strip("/")
            with self.state.lock:
                self.state.requests.append((method, path))
                status, payload = self._route(method, path, query, body)
        except VaultApiError as e:
            status, payload = e.status, {"errors": e.errors}
        except json.JSONDecodeError:
            status, payload = 400, {"errors": ["failed to parse JSON input"]}
        self._reply(status, payload, head=method == "HEAD")

    def _reply(self, status: int, payload: dict[str, Any] | None, head: bool = False) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    # --- routing ---------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]
               ) -> tuple[int, dict[str, Any] | None]:
        state = self.state
        if path == "sys/health":
            return (503 if state.sealed else 200), _health(state.sealed)
        if path == "sys/seal-status":
            return 200, {"type": "shamir", "initialized": True, "sealed": state.sealed,
                         "t": 1, "n": 1, "progress": 0, "version": "1.17.0-standin"}
        if state.sealed:
            raise VaultApiError(503, ["Vault is sealed"])
        if path == "auth/approle/login" and method == "POST":
            entry = state.approles.get(str(body.get("role_id")))
            if entry is None or entry[0] != body.get("secret_id"):
                raise VaultApiError(400, ["invalid role or secret ID"])
            return 200, self._login(entry[1], entry[2], "approle")
        if path == "auth/kubernetes/login" and method == "POST":
            k8s = state.kubernetes_roles.get(str(body.get("role")))
            if k8s is None:
                raise VaultApiError(400, [f'invalid role name "{body.get("role")}"'])
            if k8s[0] != body.get("jwt"):
                raise VaultApiError(403, ["permission denied"])
            return 200, self._login(k8s[1], k8s[2], "kubernetes")
        token = self._token()
        self._authorize(token, method, path)
        if path.startswith("auth/token/"):
            return self._token_store(token, method, path[len("auth/token/"):], body)
        if path in ("sys/policy", "sys/policies/acl") or path.startswith(
                ("sys/policy/", "sys/policies/acl/")):
            return self._policy(method, path, body)
        if path == "sys/capabilities-self" and method == "POST":
            paths = body.get("paths") or ([body["path"]] if body.get("path") else [])
            acl = state.acl(token)
            found = {p: ["root"] if "root" in token.policies
                     else sorted(acl.capabilities(p)) or ["deny"] for p in paths}
            if len(paths) == 1:
                found["capabilities"] = found[paths[0]]
            return 200, {**_envelope(found), **found}
        mount, _, rest = path.partition("/")
        kv_version = state.mounts.get(mount)
        if kv_version == 2:
            return state.handle_kv2(method, mount, rest, query, body)
        if kv_version == 1 and rest:
            return state.handle_kv1(method, mount, rest, body)
        raise VaultApiError(404, [f'no handler for route "{path}". route entry not found.'])

    def _authorize(self, token: Token, method: str, path: str) -> None:
        """Refuse the request as Vault's ACL would: 403 unless the governing rule allows it."""
        if "root" in token.policies:
            return
        if method in ("GET", "HEAD"):
            needed = "read"
        elif method == "LIST":
            needed = "list"
        elif method == "DELETE":
            needed = "delete"
        else:
            needed = "update" if self.state.exists(path) else "create"
        caps = self.state.acl(token).capabilities(path, listing=method == "LIST")
        listed = path if path.endswith("/") or method != "LIST" else f"{path}/"
        if ("deny" in caps or needed not in caps
                or (listed in ROOT_PROTECTED and "sudo" not in caps)):
            raise VaultApiError(403, [ACL_DENIED])

    def _token_store(self, token: Token, method: str, rest: str, body: dict[str, Any]
                     ) -> tuple[int, dict[str, Any] | None]:
        state = self.state
        if rest == "lookup-self" and method in ("GET", "POST"):
            return 200, _envelope(lookup_data(token))
        if rest == "renew-self" and method == "POST":
            try:
                granted, warnings = token.renew(parse_duration(body.get("increment")))
            except (RenewalRefused, PolicyError) as e:
                raise VaultApiError(400, [str(e)]) from e
            reply = _envelope(None, auth=auth_block(token, granted))
            reply["warnings"] = warnings or None
            return 200, reply
        if rest == "revoke-self" and method == "POST":
            state.tokens.pop(token.id, None)
            return 204, None
        if rest.rstrip("/") == "accessors" and method == "LIST":
            return 200, _envelope({"keys": sorted(t.accessor for t in state.tokens.values())})
        if rest in ("create", "create-orphan") and method == "POST":
            return 200, self._create_token(token, body)
        raise VaultApiError(404, [f'no handler for route "auth/token/{rest}". route entry not '
                                  "found."])

    def _create_token(self, parent: Token, body: dict[str, Any]) -> dict[str, Any]:
        requested = body.get("policies") or []
        if isinstance(requested, str):
            requested = [p.strip() for p in requested.split(",") if p.strip()]
        requested = [str(p).lower() for p in requested] or [
            p for p in parent.policies if p != "default"]
        if "root" not in parent.policies and not set(requested) <= set(parent.policies):
            raise VaultApiError(400, ["child policies must be subset of parent"])
        try:
            ttl = parse_duration(body.get("ttl")) or self.state.max_lease_ttl
            explicit_max = parse_duration(body.get("explicit_max_ttl"))
        except PolicyError as e:
            raise VaultApiError(400, [str(e)]) from e
        token_id = self.state.add_token(
            requested, ttl=0 if "root" in requested else ttl,
            renewable=bool(body.get("renewable", True)),
            token_id=body.get("id") if "root" in parent.policies else None,
            name=f"token-{body['display_name']}" if body.get("display_name") else "token",
            explicit_max_ttl=explicit_max, no_default_policy=bool(body.get("no_default_policy")))
        return _envelope(None, auth=auth_block(self.state.tokens[token_id]))

    def _policy(self, method: str, path: str, body: dict[str, Any]
                ) -> tuple[int, dict[str, Any] | None]:
        state = self.state
        acl_api = path.startswith("sys/policies/acl")
        name = path.split("/", 3)[3 if acl_api else 2] if path.count("/") >= (
            3 if acl_api else 2) else ""
        name = name.lower()
        if not name:
            if method not in ("GET", "LIST"):
                raise VaultApiError(405, [])
            keys = sorted([*state.policies, "root"])
            return 200, {**_envelope({"keys": keys, "policies": keys}), "policies": keys}
        if method == "GET":
            if name == "root":
                return 200, _envelope({"name": "root", "rules": "", "policy": ""})
            if name not in state.policies:
                raise VaultApiError(404, [])
            stored = state.policies[name][0]
            return 200, _envelope({"name": name, "rules": stored, "policy": stored})
        if name == "root":
            raise VaultApiError(400, ['cannot update "root" policy' if method == "POST"
                                      else 'cannot delete "root" policy'])
        if method == "POST":
            text = body.get("policy", body.get("rules"))
            if not isinstance(text, str) or not text.strip():
                raise VaultApiError(400, ["'policy' parameter not supplied or empty"])
            try:
                state.put_policy(name, text)
            except PolicyError as e:
                raise VaultApiError(400, [str(e)]) from e
            return 204, None
        if method == "DELETE":
            if name == "default":
                raise VaultApiError(400, ["cannot delete default policy"])
            state.policies.pop(name, None)
            return 204, None
        raise VaultApiError(405, [])

    def _token(self) -> Token:
        token_id = self.headers.get("X-Vault-Token") or ""
        bearer = self.headers.get("Authorization") or ""
        if not token_id and bearer.startswith("Bearer "):
            token_id = bearer[len("Bearer "):]
        token = self.state.tokens.get(token_id)
        if token is None or token.expired():
            raise VaultApiError(403, ["permission denied"])
        return token

    def _login(self, policies: list[str], ttl: int, method: str) -> dict[str, Any]:
        token_id = self.state.add_token(policies, ttl=ttl, renewable=True, name=method)
        return _envelope(None, auth=auth_block(self.state.tokens[token_id]))

def _health(sealed: bool) -> dict[str, Any]:
    return {"initialized": True, "sealed": sealed, "standby": False,
            "performance_standby": False, "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled", "server_time_utc": int(time.time()),
            "version": "1.17.0-standin", "cluster_name": "standin", "cluster_id": "standin"}


class VaultStandin:
    """A running stand-in: ``url``, ``root_token``, ``state`` to seed and inspect, ``stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 tls: tuple[str, str] | None = None) -> None:
        self.state = VaultState()
        handler = type("BoundVaultHandler", (VaultHandler,), {"state": self.state})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.scheme = "http"
        if tls is not None:  # (certificate file, key file): serve HTTPS
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="vault-standin")
        self.root_token = ROOT_TOKEN

    @property
    def url(self) -> str:
        host, port = str(self.server.server_address[0]), self.server.server_address[1]
        return f"{self.scheme}://{host}:{port}"

    def start(self) -> VaultStandin:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_vault_standin(port: int = 0, tls: tuple[str, str] | None = None) -> VaultStandin:
    """Start a stand-in on 127.0.0.1 (a free port unless given) in a background thread;
    with ``tls`` (certificate file, key file) it speaks HTTPS."""
    return VaultStandin(port=port, tls=tls).start()


def main() -> None:  # pragma: no cover - demo entry point
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8200)
    args = parser.parse_args()
    standin = VaultStandin(port=args.port)
    standin.state.put_secret("kv", "app/db", {"username": "app", "password": "demo-password"})
    print(f"Vault stand-in on {standin.url}; VAULT_TOKEN={standin.root_token}", flush=True)
    try:
        standin.server.serve_forever()
    except KeyboardInterrupt:
        standin.server.server_close()


if __name__ == "__main__":  # pragma: no cover
    main()
