"""Delivering Secrets through the real Kubernetes API server: create, atomic replace (a real 409
on a concurrent write), refusal of foreign Secrets, undo, removal on destroy, and a token
without the right to write Secrets (nothing is left behind)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s_client
from pydantic import SecretStr

from blocks.kubernetes import KubernetesCluster
from envforge.errors import ConfigurationError, EnvforgeError, SecretDeliveryError
from envforge.secrets.delivery import LABEL_ENVIRONMENT, SecretDeliverer
from envforge.secrets.environment import fetch_and_deliver, plan_environment_secrets
from envforge.secrets.redaction import SecretRedactor
from envforge.secrets.variables import VariableSources
from tests.integration.secrets.conftest import ClusterTarget


@pytest.fixture
def deliverer(cluster_target: ClusterTarget) -> Iterator[SecretDeliverer]:
    cluster = KubernetesCluster(kubeconfig_path=str(cluster_target.kubeconfig))
    with cluster.get_client() as api:
        yield SecretDeliverer(api, redactor=SecretRedactor())


@pytest.fixture
def namespace(deliverer: SecretDeliverer) -> Iterator[str]:
    name = f"envforge-test-{uuid.uuid4().hex[:8]}"
    assert deliverer.ensure_namespace(name, "test") is True
    assert deliverer.ensure_namespace(name, "test") is False
    yield name
    deliverer.delete_namespace(name)


def decoded(deliverer: SecretDeliverer, namespace: str, name: str) -> dict[str, str]:
    secret = deliverer.core.read_namespaced_secret(name, namespace)
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def test_create_then_replace_then_undo(deliverer: SecretDeliverer, namespace: str) -> None:
    first = deliverer.apply_secret(namespace, "app-secrets", "pr-1", {"A": "one-1111"})
    assert first.created and first.keys == ["A"]
    secret = deliverer.core.read_namespaced_secret("app-secrets", namespace)
    assert secret.metadata.labels[LABEL_ENVIRONMENT] == "pr-1"
    second = deliverer.apply_secret(namespace, "app-secrets", "pr-1",
                                    {"A": "two-2222", "B": "bee-3333"})
    assert not second.created and second.resource_version != first.resource_version
    assert decoded(deliverer, namespace, "app-secrets") == {"A": "two-2222", "B": "bee-3333"}
    assert "two-2222" not in repr(second) and "one-1111" not in repr(second)
    assert deliverer.undo(second).startswith("restored")
    assert decoded(deliverer, namespace, "app-secrets") == {"A": "one-1111"}
    assert deliverer.undo(first).startswith("deleted")
    assert deliverer.core.list_namespaced_secret(namespace).items == []


def test_a_secret_not_managed_for_the_environment_is_never_overwritten(
    deliverer: SecretDeliverer, namespace: str
) -> None:
    deliverer.core.create_namespaced_secret(namespace, {"metadata": {"name": "theirs"},
                                                        "stringData": {"K": "keep-me"}})
    with pytest.raises(SecretDeliveryError, match="not managed by envforge"):
        deliverer.apply_secret(namespace, "theirs", "pr-1", {"K": "new-value-4444"})
    assert decoded(deliverer, namespace, "theirs") == {"K": "keep-me"}


def test_a_concurrent_write_makes_the_replace_retry(
    deliverer: SecretDeliverer, namespace: str, cluster_target: ClusterTarget,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone else writes the Secret between envforge's read and its replace: the real
    server answers 409 Conflict (stale resourceVersion) and envforge reads and replaces again."""
    deliverer.apply_secret(namespace, "s", "pr-2", {"A": "v1-5555"})
    replace = deliverer.core.replace_namespaced_secret
    calls: list[int] = []

    def replace_after_a_concurrent_write(*args: object, **kwargs: object) -> object:
        if not calls:
            cluster_target.plane.kubectl("annotate", "secret", "-n", namespace, "s",
                                         "someone-else/touched=yes")
        calls.append(1)
        return replace(*args, **kwargs)

    monkeypatch.setattr(deliverer.core, "replace_namespaced_secret",
                        replace_after_a_concurrent_write)
    delivery = deliverer.apply_secret(namespace, "s", "pr-2", {"A": "v2-6666"})
    assert not delivery.created and len(calls) == 2  # the first replace got the 409
    assert decoded(deliverer, namespace, "s") == {"A": "v2-6666"}


def test_remove_environment_deletes_only_its_secrets(
    deliverer: SecretDeliverer, namespace: str
) -> None:
    deliverer.apply_secret(namespace, "a", "pr-3", {"K": "x-7777"})
    deliverer.apply_secret(namespace, "b", "pr-4", {"K": "y-8888"})
    assert deliverer.remove_environment(namespace, "pr-3") == ["a"]
    names = [s.metadata.name for s in deliverer.core.list_namespaced_secret(namespace).items]
    assert names == ["b"]


def test_a_token_that_may_not_write_secrets_leaves_nothing_behind(
    cluster_target: ClusterTarget, tmp_path: Path
) -> None:
    """The namespace is made, the Secret is refused (403): the namespace is deleted again (a
    real one is Terminating for a moment) and the error names the refusal, not the value."""
    narrow = cluster_target.narrow_kubeconfig(tmp_path / "narrow", [
        {"apiGroups": [""], "resources": ["namespaces"],
         "verbs": ["get", "list", "create", "delete"]}])
    environment = f"pr-{uuid.uuid4().hex[:6]}"
    plan = plan_environment_secrets(VariableSources(
        builtins={"DATABASE_URL": "postgres://app:db-pass-9999@db/app"},
        sensitive_builtins=frozenset({"DATABASE_URL"}), template={"LOG_LEVEL": "info"},
        environment_name=environment))
    with KubernetesCluster(kubeconfig_path=str(narrow)).get_client() as api:
        deliverer = SecretDeliverer(api, redactor=SecretRedactor())
        with pytest.raises(EnvforgeError) as info:
            fetch_and_deliver(plan, reader=None, deliverer=deliverer,
                              manifests_dir=tmp_path / "manifests")
    assert "db-pass-9999" not in str(info.value)
    assert "forbidden" in str(info.value).lower() or "permission" in str(info.value).lower()
    cluster_target.assert_namespace_going(environment)
    assert list((tmp_path / "manifests").iterdir()) == []  # the ConfigMap file too


def test_cluster_block_sources(cluster_target: ClusterTarget, tmp_path: Path) -> None:
    content = KubernetesCluster(kubeconfig=SecretStr(cluster_target.kubeconfig.read_text()))
    with content.get_client() as api:
        assert k8s_client.CoreV1Api(api).list_namespace().items
    from_env = KubernetesCluster.from_environment({"KUBECONFIG": str(cluster_target.kubeconfig)})
    assert from_env.kubeconfig_path == str(cluster_target.kubeconfig)
    with pytest.raises(ConfigurationError, match="is not a file"):
        KubernetesCluster(kubeconfig_path=str(tmp_path / "none")).get_client()
    with pytest.raises(ConfigurationError, match="context"):
        KubernetesCluster(kubeconfig_path=str(cluster_target.kubeconfig),
                          context="no-such-context").get_client()
