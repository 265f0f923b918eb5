"""Vault's ACL policies and token lifetimes, written from Vault's documentation (concepts/policies,
api-docs/system/capabilities-self, api-docs/auth/token, commands/token/renew), then envforge's
reading with a narrow token.

Every test drives Vault's HTTP API through hvac with policies written through ``sys/policy`` and
tokens made by ``auth/token/create``; they run against the session's OpenBao (tests/openbao.py)
or a Vault of your own (VAULT_ADDR and VAULT_TOKEN set): the behaviours envforge relies on,
checked on the real server.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hvac
import hvac.exceptions
import pytest
import requests
from pydantic import SecretStr

from blocks.vault import VaultConnection
from envforge.errors import VaultAuthError, VaultPermissionError
from envforge.secrets.redaction import SecretRedactor
from envforge.secrets.references import parse_reference
from tests.integration.secrets.conftest import VaultTarget

DB_PASSWORD = "policy-test-db-password-7777"
API_TOKEN = "policy-test-api-token-8888"


@dataclass
class Policies:
    """Writes policies and tokens on the Vault under test; removes the policies afterwards."""

    target: VaultTarget
    written: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.target.prefix

    def write(self, rules: str | dict[str, Any]) -> str:
        name = f"envforge-test-{uuid.uuid4().hex[:10]}"
        text = rules if isinstance(rules, str) else json.dumps(rules)
        self.target.admin().sys.create_or_update_policy(name=name, policy=text)
        self.written.append(name)
        return name

    def token(self, *rules: str, **options: Any) -> hvac.Client:
        """A client holding a new token with one policy per HCL text in ``rules``."""
        names = [self.write(r) for r in rules]
        created = self.target.admin().auth.token.create(policies=names or None, **options)
        return hvac.Client(url=self.target.address, token=created["auth"]["client_token"])

    def capabilities(self, client: hvac.Client, *paths: str) -> dict[str, list[str]]:
        answer = client.adapter.post("/v1/sys/capabilities-self", json={"paths": list(paths)})
        return {p: sorted(answer["data"][p]) for p in paths}


@pytest.fixture
def policies(vault_service: VaultTarget) -> Iterator[Policies]:
    """The session's Vault (other tests count requests by their own paths and tokens, so
    sharing it is safe)."""
    target = dataclasses.replace(vault_service, prefix=f"envforge-test-{uuid.uuid4().hex[:8]}")
    made = Policies(target)
    yield made
    admin = target.admin()
    for name in made.written:
        admin.sys.delete_policy(name)


def kv_path(policies: Policies, rest: str) -> str:
    return f"kv/data/{policies.base}/{rest}"


def test_capabilities_are_per_path_and_deny_by_default(policies: Policies) -> None:
    policies.target.put_secret(f"{policies.base}/app", {"password": DB_PASSWORD})
    client = policies.token(f'path "{kv_path(policies, "app")}" {{ capabilities = ["read"] }}')
    kv = client.secrets.kv.v2
    read = kv.read_secret_version(f"{policies.base}/app", mount_point="kv",
                                  raise_on_deleted_version=True)
    assert read["data"]["data"] == {"password": DB_PASSWORD}
    with pytest.raises(hvac.exceptions.Forbidden):  # read does not include update
        kv.create_or_update_secret(f"{policies.base}/app", {"password": "x"}, mount_point="kv")
    with pytest.raises(hvac.exceptions.Forbidden):  # nor any other path
        kv.read_secret_version(f"{policies.base}/other", mount_point="kv",
                               raise_on_deleted_version=True)
    assert policies.capabilities(client, kv_path(policies, "app"), kv_path(policies, "x")) == {
        kv_path(policies, "app"): ["read"], kv_path(policies, "x"): ["deny"]}


def test_refusal_is_vaults_403_error_shape(policies: Policies) -> None:
    client = policies.token(f'path "{kv_path(policies, "a")}" {{ capabilities = ["read"] }}')
    url = f"{policies.target.address}/v1/{kv_path(policies, 'b')}"
    refused = requests.get(url, headers={"X-Vault-Token": str(client.token)}, timeout=5)
    body = refused.json()
    assert refused.status_code == 403 and set(body) == {"errors"}
    assert len(body["errors"]) == 1 and "permission denied" in body["errors"][0]


def test_default_policy_grants_lookup_and_renew_self(policies: Policies) -> None:
    client = policies.token(f'path "{kv_path(policies, "a")}" {{ capabilities = ["read"] }}',
                            ttl="1h")
    looked_up = client.auth.token.lookup_self()["data"]
    assert "default" in looked_up["policies"]
    assert client.auth.token.renew_self()["auth"]["client_token"] == client.token
    bare = policies.token(f'path "{kv_path(policies, "a")}" {{ capabilities = ["read"] }}',
                          no_default_policy=True)
    for call in (bare.auth.token.lookup_self, bare.auth.token.renew_self):
        with pytest.raises(hvac.exceptions.Forbidden):
            call()


def test_glob_is_a_prefix_only_at_the_end(policies: Policies) -> None:
    client = policies.token(
        f'path "{kv_path(policies, "apps/*")}" {{ capabilities = ["read"] }}\n'
        f'path "{kv_path(policies, "db-*")}" {{ capabilities = ["read"] }}\n'
        f'path "{kv_path(policies, "*/literal")}" {{ capabilities = ["read"] }}')
    found = policies.capabilities(
        client, kv_path(policies, "apps/web"), kv_path(policies, "apps/web/config"),
        kv_path(policies, "apps"), kv_path(policies, "db-2"), kv_path(policies, "db-10/web"),
        kv_path(policies, "db2"), kv_path(policies, "team/literal"))
    assert found == {
        kv_path(policies, "apps/web"): ["read"], kv_path(policies, "apps/web/config"): ["read"],
        kv_path(policies, "apps"): ["deny"],  # the glob needs the trailing slash's segment
        kv_path(policies, "db-2"): ["read"], kv_path(policies, "db-10/web"): ["read"],
        kv_path(policies, "db2"): ["deny"],
        kv_path(policies, "team/literal"): ["deny"],  # '*' inside a path is no wildcard
    }


def test_plus_stands_for_exactly_one_segment(policies: Policies) -> None:
    client = policies.token(
        f'path "{kv_path(policies, "+/config")}" {{ capabilities = ["read"] }}')
    found = policies.capabilities(client, kv_path(policies, "dev/config"),
                                  kv_path(policies, "dev/eu/config"), kv_path(policies, "config"))
    assert found == {kv_path(policies, "dev/config"): ["read"],
                     kv_path(policies, "dev/eu/config"): ["deny"],
                     kv_path(policies, "config"): ["deny"]}


def test_the_most_specific_rule_wins_and_rules_are_not_merged(policies: Policies) -> None:
    p = kv_path(policies, "")  # ends with '/'
    client = policies.token(
        f'path "{p}*" {{ capabilities = ["list"] }}\n'
        f'path "{p}locked" {{ capabilities = ["deny"] }}\n'
        f'path "{p}one" {{ capabilities = ["update"] }}\n'
        f'path "kv/+/{policies.base}/web" {{ capabilities = ["read"] }}\n'
        f'path "{p}+/web" {{ capabilities = ["read"] }}\n'
        f'path "{p}+/+/cfg" {{ capabilities = ["delete"] }}\n'
        f'path "{p}+/eu/cfg" {{ capabilities = ["create"] }}\n'
        f'path "{p}+/x*" {{ capabilities = ["read"] }}\n')
    found = policies.capabilities(client, f"{p}locked", f"{p}one", f"{p}web", f"{p}dev/web",
                                  f"{p}dev/eu/cfg", f"{p}dev/xyz")
    assert found == {
        f"{p}locked": ["deny"],  # an exact rule beats any glob, and deny is final
        f"{p}one": ["update"],  # only the governing rule counts: no "list" from the glob
        f"{p}web": ["list"],  # "kv/+/..." has its first wildcard earlier than "{p}*": lower
        f"{p}dev/web": ["read"],  # same first wildcard; "{p}*" ends in a glob: lower
        f"{p}dev/eu/cfg": ["create"],  # "+/+/cfg" has more '+' segments: lower
        f"{p}dev/xyz": ["list"],  # both end in a glob; "{p}+/x*" has more '+': lower
    }
    ranked = policies.token(
        f'path "{p}+/x*" {{ capabilities = ["read"] }}\n'
        f'path "{p}+/xy*" {{ capabilities = ["delete"] }}\n'  # the shorter one is lower
        f'path "{p}+/c/+" {{ capabilities = ["read"] }}\n'  # the lexically smaller is lower
        f'path "{p}+/+/d" {{ capabilities = ["update"] }}\n')
    assert policies.capabilities(ranked, f"{p}dev/xyz", f"{p}x/c/d") == {
        f"{p}dev/xyz": ["delete"], f"{p}x/c/d": ["read"]}


def test_policies_of_one_token_merge_per_path_and_deny_wins(policies: Policies) -> None:
    path = kv_path(policies, "shared")
    merged = policies.token(f'path "{path}" {{ capabilities = ["read"] }}',
                            f'path "{path}" {{ capabilities = ["list", "update"] }}')
    assert policies.capabilities(merged, path)[path] == ["list", "read", "update"]
    denied = policies.token(f'path "{path}" {{ capabilities = ["read"] }}',
                            f'path "{path}" {{ capabilities = ["deny"] }}')
    assert policies.capabilities(denied, path)[path] == ["deny"]


def test_json_policies_and_invalid_capabilities(policies: Policies) -> None:
    path = kv_path(policies, "json")
    client = policies.token(json.dumps({"path": {path: {"capabilities": ["read", "list"]}}}))
    assert policies.capabilities(client, path)[path] == ["list", "read"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        policies.write(f'path "{path}" {{ capabilities = ["read", "fly"] }}')


def test_create_and_update_are_distinct(policies: Policies) -> None:
    base = policies.base
    client = policies.token(f'path "{kv_path(policies, "*")}" {{ capabilities = ["create"] }}')
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(f"{base}/new", {"k": "1"}, mount_point="kv")  # creates: allowed
    with pytest.raises(hvac.exceptions.Forbidden):  # it exists now: an update
        kv.create_or_update_secret(f"{base}/new", {"k": "2"}, mount_point="kv")
    updater = policies.token(f'path "{kv_path(policies, "*")}" {{ capabilities = ["update"] }}')
    with pytest.raises(hvac.exceptions.Forbidden):
        updater.secrets.kv.v2.create_or_update_secret(f"{base}/other", {"k": "1"},
                                                      mount_point="kv")
    updater.secrets.kv.v2.create_or_update_secret(f"{base}/new", {"k": "3"}, mount_point="kv")


def test_list_matches_with_or_without_the_trailing_slash(policies: Policies) -> None:
    policies.target.put_secret(f"{policies.base}/dir/a", {"k": "1"})
    for pattern in (f"kv/metadata/{policies.base}/dir", f"kv/metadata/{policies.base}/dir/"):
        client = policies.token(f'path "{pattern}" {{ capabilities = ["list"] }}')
        listed = client.secrets.kv.v2.list_secrets(f"{policies.base}/dir", mount_point="kv")
        assert listed["data"]["keys"] == ["a"]
    reader = policies.token(f'path "kv/metadata/{policies.base}/dir" {{ capabilities = ["read"] }}')
    with pytest.raises(hvac.exceptions.Forbidden):
        reader.secrets.kv.v2.list_secrets(f"{policies.base}/dir", mount_point="kv")


def test_root_protected_paths_need_sudo(policies: Policies) -> None:
    without = policies.token('path "auth/token/accessors/" { capabilities = ["list"] }')
    with pytest.raises(hvac.exceptions.Forbidden):
        without.auth.token.list_accessors()
    with_sudo = policies.token('path "auth/token/accessors/" { capabilities = ["list", "sudo"] }')
    assert with_sudo.auth.token.list_accessors()["data"]["keys"]


def test_renewal_is_capped_at_the_explicit_max_ttl(policies: Policies) -> None:
    rules = f'path "{kv_path(policies, "a")}" {{ capabilities = ["read"] }}'
    client = policies.token(rules, ttl="30s", explicit_max_ttl="90s")
    renewed = client.auth.token.renew_self(increment="1h")
    assert 0 < renewed["auth"]["lease_duration"] <= 90
    assert any("capped" in w for w in renewed["warnings"] or [])
    looked_up = client.auth.token.lookup_self()["data"]
    assert looked_up["explicit_max_ttl"] == 90 and 0 < looked_up["ttl"] <= 90
    within = client.auth.token.renew_self(increment="20s")
    assert within["auth"]["lease_duration"] == 20 and not within["warnings"]
    fixed = policies.token(rules, ttl="30s", renewable=False)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        fixed.auth.token.renew_self()


# --- envforge reading through the VaultConnection block with a narrow token -----------------

def narrow_reader(policies: Policies, rules: str) -> Any:
    client = policies.token(rules)
    connection = VaultConnection(address=policies.target.address, token=SecretStr(client.token))
    reader = connection.get_reader()
    reader.redactor = SecretRedactor()
    return reader


def test_envforge_names_the_path_and_missing_capability_never_the_value(
        policies: Policies) -> None:
    base = policies.base
    policies.target.put_secret(f"{base}/db", {"password": DB_PASSWORD})
    policies.target.put_secret(f"{base}/api", {"token": API_TOKEN})
    reader = narrow_reader(
        policies, f'path "{kv_path(policies, "api")}" {{ capabilities = ["read"] }}\n'
                  f'path "{kv_path(policies, "db")}" {{ capabilities = ["list"] }}')
    assert reader.read(parse_reference(f"vault:kv/{base}/api#token")) == API_TOKEN
    with pytest.raises(VaultPermissionError) as info:
        reader.read(parse_reference(f"vault:kv/{base}/db#password"))
    message = str(info.value)
    assert "\n" not in message
    assert f"kv/data/{base}/db" in message and "'read' capability" in message
    assert "auth method token" in message and policies.target.address in message
    assert DB_PASSWORD not in message and API_TOKEN not in message
    assert DB_PASSWORD not in repr(info.value.__cause__)


def test_envforge_with_a_token_lacking_the_default_policy(policies: Policies) -> None:
    client = policies.token(f'path "{kv_path(policies, "a")}" {{ capabilities = ["read"] }}',
                            no_default_policy=True)
    connection = VaultConnection(address=policies.target.address, token=SecretStr(client.token))
    with pytest.raises(VaultAuthError) as info:  # login looks the token up: default grants it
        connection.get_client()
    assert "auth method token" in str(info.value) and str(client.token) not in str(info.value)
