"""Vault's HTTP API as envforge relies on it, driven by hvac against the session's real OpenBao
(tests/openbao.py): response envelopes, error bodies, sealing, policy text forms and token
lifetimes. These were once the Vault stand-in's conformance tests; the stand-in is gone."""

from __future__ import annotations

import time

import hvac
import hvac.exceptions
import pytest
import requests

from tests.openbao import OpenBao


def test_vault_envelopes_errors_and_metadata(openbao: OpenBao) -> None:
    c = openbao.admin()
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
    raw = requests.get(f"{openbao.address}/v1/kv/data/shape/none",
                       headers={"X-Vault-Token": openbao.root_token}, timeout=5)
    assert raw.status_code == 404 and raw.json() == {"errors": []}
    denied = requests.get(f"{openbao.address}/v1/kv/data/shape/a",
                          headers={"X-Vault-Token": "wrong"}, timeout=5)
    assert denied.status_code == 403 and denied.json()["errors"] == ["permission denied"]
    with openbao.sealed():
        health = requests.get(f"{openbao.address}/v1/sys/health", timeout=5)
        assert health.status_code == 503 and health.json()["sealed"] is True
        with pytest.raises(hvac.exceptions.VaultDown):
            c.secrets.kv.v2.read_secret_version("shape/a", mount_point="kv",
                                                raise_on_deleted_version=True)
    assert requests.get(f"{openbao.address}/v1/sys/health", timeout=5).status_code == 200


def test_vault_policy_text_forms_and_refusals(openbao: OpenBao) -> None:
    """HCL with comments, the legacy ``policy = "write"`` form, parameters, repeated paths
    (capabilities merge) and JSON; malformed text is refused with Vault's 400."""
    admin = openbao.admin()
    admin.sys.create_or_update_policy(name="forms", policy='''
        # comment
        path "kv/data/forms/a/*" { capabilities = ["read"] }  // trailing comment
        /* block
           comment */
        path "kv/data/forms/legacy" { policy = "write" }
        path "kv/data/forms/params" {
          capabilities = ["create"]
          allowed_parameters = { "k" = [] }
        }
        path "kv/data/forms/a/*" { capabilities = ["list"] }
    ''')
    admin.sys.create_or_update_policy(
        name="forms-deny", policy='{"path": {"kv/data/forms/a/x": {"capabilities": ["deny"]}}}')
    token = admin.auth.token.create(policies=["forms", "forms-deny"], ttl="10m")
    client = hvac.Client(url=openbao.address, token=token["auth"]["client_token"])
    paths = ["kv/data/forms/a/y/z", "kv/data/forms/a/x", "kv/data/forms/a",
             "kv/data/forms/legacy", "kv/data/forms/params"]
    answer = client.adapter.post("/v1/sys/capabilities-self", json={"paths": paths})
    found = {p: sorted(answer["data"][p]) for p in paths}
    assert found == {"kv/data/forms/a/y/z": ["list", "read"], "kv/data/forms/a/x": ["deny"],
                     "kv/data/forms/a": ["deny"],
                     "kv/data/forms/legacy": ["create", "delete", "list", "read", "update"],
                     "kv/data/forms/params": ["create"]}
    for bad in ('path "x" { capabilities = ["fly"] }', 'path "x" { policy = "all" }',
                'path "x" { capabilities = ["read"]', '{"path": ['):
        with pytest.raises(hvac.exceptions.InvalidRequest, match="failed to parse policy"):
            admin.sys.create_or_update_policy(name="bad-form", policy=bad)


def test_vault_acl_refusal_body_and_token_expiry_at_max_ttl(openbao: OpenBao) -> None:
    admin = openbao.admin()
    admin.sys.create_or_update_policy(
        name="only-a", policy='path "kv/data/acl/a" { capabilities = ["read"] }')
    created = admin.auth.token.create(policies=["only-a"], ttl="1s", explicit_max_ttl="2s")
    token = created["auth"]["client_token"]
    refused = requests.get(f"{openbao.address}/v1/kv/data/acl/b",
                           headers={"X-Vault-Token": token}, timeout=5)
    assert refused.status_code == 403
    errors = refused.json()["errors"]
    assert len(errors) == 1 and "permission denied" in errors[0]
    client = hvac.Client(url=openbao.address, token=token)
    renewed = client.auth.token.renew_self(increment=60)
    assert renewed["auth"]["lease_duration"] <= 2
    assert any("capped" in w for w in renewed["warnings"] or [])
    time.sleep(2.2)  # past issue time + explicit_max_ttl: the token is gone
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.token.lookup_self()
