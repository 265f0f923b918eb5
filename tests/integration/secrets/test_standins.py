"""The stand-ins themselves, driven by the official kubernetes client and hvac unchanged: the
REST conventions and response shapes other tests (and later work) rely on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
import requests
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from tests.standins.kubernetes import KubernetesStandin, start_kubernetes_standin
from tests.standins.vault import VaultStandin, start_vault_standin

APP = ("argoproj.io", "v1alpha1")


@pytest.fixture(scope="module")
def kube() -> Iterator[KubernetesStandin]:
    standin = start_kubernetes_standin()
    yield standin
    standin.stop()


@pytest.fixture
def api(kube: KubernetesStandin, tmp_path: Path) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(str(kube.write_kubeconfig(tmp_path / "config"))) as c:
        yield c


def status_of(error: ApiException) -> dict[str, object]:
    body: dict[str, object] = json.loads(error.body)
    return body


def test_cluster_scoped_and_namespaced_objects_with_versions(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    ns = core.create_namespace({"metadata": {"name": "shapes", "labels": {"team": "a"}}})
    assert ns.status.phase == "Active"
    cm = core.create_namespaced_config_map("shapes", {"metadata": {"name": "c"},
                                                      "data": {"k": "v"}})
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map("shapes", {"metadata": {"name": "c"}})
    assert exists.value.status == 409 and status_of(exists.value)["reason"] == "AlreadyExists"
    cm.data = {"k": "w"}
    updated = core.replace_namespaced_config_map("c", "shapes", cm)
    assert int(updated.metadata.resource_version) > int(cm.metadata.resource_version)
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("c", "shapes", cm)  # still the old resourceVersion
    assert stale.value.status == 409 and status_of(stale.value)["reason"] == "Conflict"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", "shapes")
    assert status_of(missing.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'configmaps "nope" not found', "reason": "NotFound", "code": 404,
        "details": {"name": "nope", "group": "", "kind": "configmaps"}}
    with pytest.raises(ApiException) as no_ns:
        core.create_namespaced_secret("absent", {"metadata": {"name": "s"}})
    assert no_ns.value.status == 404 and "namespaces" in status_of(no_ns.value)["message"]
    core.delete_namespace("shapes")
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("c", "shapes")  # went with its namespace


def test_label_selectors_generate_name_and_validation(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name, labels in (("a", {"env": "pr-1", "tier": "web"}), ("b", {"env": "pr-2"}),
                         ("c", {"tier": "db"})):
        core.create_namespaced_secret("default", {"metadata": {"name": f"sel-{name}",
                                                               "labels": labels}})

    def names(selector: str) -> list[str]:
        found = core.list_namespaced_secret("default", label_selector=selector).items
        return [s.metadata.name for s in found if s.metadata.name.startswith("sel-")]

    assert names("env=pr-1") == ["sel-a"]
    assert names("env!=pr-1") == ["sel-b", "sel-c"]
    assert names("env in (pr-1,pr-2)") == ["sel-a", "sel-b"]
    assert names("tier,!env") == ["sel-c"]
    made = core.create_namespaced_secret("default", {"metadata": {"generateName": "gen-"}})
    assert made.metadata.name.startswith("gen-") and len(made.metadata.name) == 9
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_secret("default", {"metadata": {"name": "Bad_Name"}})
    assert invalid.value.status == 422 and status_of(invalid.value)["reason"] == "Invalid"


def test_argo_application_status_and_discovery(kube: KubernetesStandin,
                                               api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(*APP, "default", "applications", {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "labels": {"env": "pr-1"}}, "spec": {"project": "x"}})
    kube.set_status("argoproj.io", "applications", "default", "web",
                    {"health": {"status": "Progressing"}})
    patched = custom.patch_namespaced_custom_object_status(
        *APP, "default", "applications", "web", {"status": {"sync": {"status": "Synced"}}},
        _content_type="application/merge-patch+json")
    assert patched["status"] == {"health": {"status": "Progressing"},
                                 "sync": {"status": "Synced"}}
    json_patched = custom.patch_namespaced_custom_object(
        *APP, "default", "applications", "web",
        [{"op": "replace", "path": "/status/health/status", "value": "Healthy"}],
        _content_type="application/json-patch+json")
    assert json_patched["status"]["health"]["status"] == "Healthy"
    listed = custom.list_namespaced_custom_object(*APP, "default", "applications",
                                                  label_selector="env=pr-1")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["web"]
    dynamic = DynamicClient(api)
    apps = dynamic.resources.get(api_version="argoproj.io/v1alpha1", kind="Application")
    assert apps.get(namespace="default", name="web").status.health.status == "Healthy"


def test_pod_logs_and_faults(kube: KubernetesStandin, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod("default", {"metadata": {"name": "p"},
                                           "spec": {"containers": [{"name": "c"}]}})
    kube.set_pod_log("default", "p", "one\ntwo\nthree\n")
    assert core.read_namespaced_pod_log("p", "default") == "one\ntwo\nthree\n"
    assert core.read_namespaced_pod_log("p", "default", tail_lines=2) == "two\nthree\n"
    kube.fail("GET", "/pods/p$", status=503)
    with pytest.raises(ApiException) as failed:
        core.read_namespaced_pod("p", "default")
    assert failed.value.status == 503
    assert core.read_namespaced_pod("p", "default").metadata.name == "p"  # once only


def test_requests_without_the_token_are_unauthorized(kube: KubernetesStandin) -> None:
    response = requests.get(f"{kube.url}/api/v1/namespaces", timeout=5)
    assert response.status_code == 401 and response.json()["reason"] == "Unauthorized"


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


def test_watch_streams_changes(kube: KubernetesStandin, api: client.ApiClient) -> None:
    from kubernetes import watch

    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "w-1",
                                                              "labels": {"w": "yes"}}})
    seen: list[tuple[str, str]] = []
    stream = watch.Watch().stream(core.list_namespaced_config_map, "default",
                                  label_selector="w=yes", timeout_seconds=5)
    for event in stream:
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 1:
            core.create_namespaced_config_map("default", {"metadata": {
                "name": "w-2", "labels": {"w": "yes"}}})
            core.create_namespaced_config_map("default", {"metadata": {"name": "w-other"}})
            core.delete_namespaced_config_map("w-1", "default")
        if len(seen) == 3:
            break
    assert seen == [("ADDED", "w-1"), ("ADDED", "w-2"), ("DELETED", "w-1")]


def test_a_stopped_standin_is_unreachable_even_on_kept_alive_connections(tmp_path: Path
                                                                          ) -> None:
    standin = start_kubernetes_standin()
    kubeconfig = standin.write_kubeconfig(tmp_path / "config")
    with config.new_client_from_config(str(kubeconfig)) as api:
        api.configuration.retries = 0
        core = client.CoreV1Api(api)
        assert core.read_namespace("default").metadata.name == "default"
        standin.stop()
        with pytest.raises(Exception) as info:
            core.read_namespace("default", _request_timeout=3)
        assert not isinstance(info.value, ApiException) or info.value.status == 0


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
