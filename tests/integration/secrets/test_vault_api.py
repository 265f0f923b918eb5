"""The Vault stand-in itself, driven by hvac unchanged: the REST conventions, response shapes and
policy rules other tests rely on. (Kubernetes has no stand-in any more: the tests run against
the real API server, tests/kube.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import hvac
import hvac.exceptions
import pytest
import requests

from tests.standins.vault import VaultStandin, start_vault_standin


@pytest.fixture(scope="module")
def vault() -> Iterator[VaultStandin]:
    standin = start_vault_standin()
    yield standin
    standin.stop()


def test_vault_envelopes_errors_and_metadata(vault: VaultStandin) -> None:
    c = hvac.Client(url=vault.url, token=vault.root_token)
    c.secrets.kv.v2.create_or_update_secret("shape/a", {"k": "1"}, mount_point="kv")
    c.secrets.kv.v2.create_or_update_secret("shape/a", {"k": "2"}, mount_point="kv")
    read = c.secrets.kv.v2.read_secret_version("shape/a", mount_point="kv",
                                               raise_on_deleted_version=True)
    assert set(read) >= {"request_id", "lease_id", "renewable", "lease_duration", "data",
                         "wrap_info", "warnings", "auth"}
    assert read["data"]["metadata"]["version"] == 2
    meta = c.secrets.kv.v2.read_secret_metadata("shape/a", mount_point="kv")
    assert meta["data"]["current_version"] == 2 and set(meta["data"]["versions"]) == {"1", "2"}
    assert c.secrets.kv.v2.list_secrets("shape", mount_point="kv")["data"]["keys"] == ["a"]
    raw = requests.get(f"{vault.url}/v1/kv/data/shape/none",
                       headers={"X-Vault-Token": vault.root_token}, timeout=5)
    assert raw.status_code == 404 and raw.json() == {"errors": []}
    denied = requests.get(f"{vault.url}/v1/kv/data/shape/a",
                          headers={"X-Vault-Token": "wrong"}, timeout=5)
    assert denied.status_code == 403 and denied.json() == {"errors": ["permission denied"]}
    vault.state.sealed = True
    try:
        health = requests.get(f"{vault.url}/v1/sys/health", timeout=5)
        assert health.status_code == 503 and health.json()["sealed"] is True
        with pytest.raises(hvac.exceptions.VaultDown):
            c.secrets.kv.v2.read_secret_version("shape/a", mount_point="kv",
                                                raise_on_deleted_version=True)
    finally:
        vault.state.sealed = False


def test_vault_policy_text_forms_and_acl_body() -> None:
    from tests.standins.vault_policy import Acl, PolicyError, parse_policy

    rules = parse_policy('''
        # comment
        path "kv/data/a/*" { capabilities = ["read"] }  // trailing comment
        /* block
           comment */
        path "kv/data/legacy" { policy = "write" }
        path "kv/data/params" {
          capabilities = ["create"]
          allowed_parameters = { "k" = [] }
        }
        path "kv/data/a/*" { capabilities = ["list"] }
    ''')
    assert rules == {"kv/data/a/*": {"read", "list"},
                     "kv/data/legacy": {"create", "read", "update", "delete", "list"},
                     "kv/data/params": {"create"}}
    acl = Acl([rules, parse_policy('{"path": {"kv/data/a/x": {"capabilities": ["deny"]}}}')])
    assert acl.capabilities("kv/data/a/y/z") == {"read", "list"}
    assert acl.capabilities("kv/data/a/x") == {"deny"}
    assert acl.capabilities("kv/data/a") == frozenset()
    for bad in ('path "x" { capabilities = ["fly"] }', 'path "x" { policy = "all" }',
                'path "x" { capabilities = ["read"]', 'paths "x" {}', '{"path": ['):
        with pytest.raises(PolicyError, match="failed to parse policy"):
            parse_policy(bad)


def test_vault_acl_refusal_body_and_token_expiry_at_max_ttl(vault: VaultStandin) -> None:
    import time

    vault.state.put_policy("only-a", 'path "kv/data/acl/a" { capabilities = ["read"] }')
    token = vault.state.add_token(["only-a"], ttl=1, explicit_max_ttl=2)
    refused = requests.get(f"{vault.url}/v1/kv/data/acl/b", headers={"X-Vault-Token": token},
                           timeout=5)
    assert refused.status_code == 403
    assert refused.json() == {"errors": ["1 error occurred:\n\t* permission denied\n\n"]}
    client = hvac.Client(url=vault.url, token=token)
    renewed = client.auth.token.renew_self(increment=60)
    assert renewed["auth"]["lease_duration"] <= 2 and "capped" in renewed["warnings"][0]
    time.sleep(2.2)  # past issue time + explicit_max_ttl: the token is gone, as in Vault
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.token.lookup_self()
