"""envforge.core.kubernetes_boundary: the one mapping of kubernetes client errors (the real
server's answers are exercised in tests/integration/cluster; these pin the table)."""

from __future__ import annotations

import json

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from envforge.core.kubernetes_boundary import (
    CLUSTER_ERRORS,
    ErrorKinds,
    NotFound,
    kubernetes_errors,
)
from envforge.errors import (
    ClusterAccessError,
    ClusterApiError,
    ClusterBusyError,
    ClusterConnectionError,
    ClusterUnreachableError,
    NamespaceTerminatingError,
    SecretDeliveryError,
    TemporaryError,
)


def _api(status: int, reason: str, message: str) -> ApiException:
    e = ApiException(status=status, reason=reason)
    e.body = json.dumps({"kind": "Status", "message": message})
    return e


def _raise(error: BaseException, kinds: ErrorKinds = CLUSTER_ERRORS) -> BaseException:
    with pytest.raises(Exception) as info, kubernetes_errors(
            "list pods in ns1", "kubeconfig k", scrub=lambda s: s.replace("hunter2", "***"),
            kinds=kinds):
        raise error
    return info.value


def test_forbidden_names_verb_and_resource_and_is_permanent() -> None:
    error = _raise(_api(403, "Forbidden", 'pods is forbidden: User "system:serviceaccount:a:b"'
                        ' cannot list resource "pods" in API group "" in the namespace "ns1"'))
    assert isinstance(error, ClusterAccessError) and not isinstance(error, TemporaryError)
    assert 'cannot list resource "pods"' in str(error) and "\n" not in str(error)


def test_refused_websocket_handshake_is_a_permission_problem_not_tls() -> None:
    error = _raise(ApiException(status=0, reason="Handshake status 403 Forbidden -+-+- {}"))
    assert isinstance(error, ClusterAccessError)
    assert "TLS" not in str(error)


def test_no_answer_is_one_temporary_class() -> None:
    error = _raise(urllib3.exceptions.MaxRetryError(None, "/api", "refused"))  # type: ignore[arg-type]
    assert isinstance(error, ClusterConnectionError) and isinstance(error, TemporaryError)
    error = _raise(ConnectionRefusedError(111, "Connection refused"))
    assert isinstance(error, ClusterConnectionError)


def test_delivery_family_keeps_its_classes_and_unreachable_is_one_class() -> None:
    family = ErrorKinds(refused=SecretDeliveryError, denied=SecretDeliveryError,
                        missing=SecretDeliveryError, unreachable=ClusterUnreachableError)
    assert isinstance(_raise(_api(403, "Forbidden", "no"), family), SecretDeliveryError)
    unreachable = _raise(OSError("reset"), family)
    assert isinstance(unreachable, ClusterConnectionError)  # one class for "no answer"
    assert isinstance(unreachable, SecretDeliveryError)


def test_busy_is_temporary_other_refusals_permanent_and_scrubbed() -> None:
    assert isinstance(_raise(_api(503, "Service Unavailable", "etcd")), ClusterBusyError)
    error = _raise(_api(422, "Unprocessable Entity", 'Secret "s" is invalid: hunter2'))
    assert type(error) is ClusterApiError and "hunter2" not in str(error)
    assert isinstance(_raise(_api(404, "Not Found", "gone")), NotFound)


def test_a_quota_or_admission_403_is_the_objects_fault_not_the_credentials() -> None:
    error = _raise(_api(403, "Forbidden", 'deployments.apps "web" is forbidden: exceeded '
                        "quota: tiny, requested: count/deployments.apps=1"))
    assert type(error) is ClusterApiError and "exceeded quota: tiny" in str(error)


def test_a_server_side_apply_that_does_not_fit_the_schema_is_not_retried() -> None:
    error = _raise(_api(500, "Internal Server Error", "failed to create typed patch object "
                        "(argocd/a; argoproj.io/v1alpha1, Kind=Application): .spec.x: "
                        "field not declared in schema"))
    assert type(error) is ClusterApiError and not isinstance(error, TemporaryError)


def test_a_terminating_namespace_is_its_own_temporary_error() -> None:
    forbidden = _api(403, "Forbidden", 'configmaps "d" is forbidden: unable to create new '
                     "content in namespace t1 because it is being terminated")
    forbidden.body = forbidden.body[:-1] + ', "details": {"causes": [{"reason": ' \
        '"NamespaceTerminating"}]}}'
    assert isinstance(_raise(forbidden), NamespaceTerminatingError)
    again = _raise(_api(409, "Conflict", 'object is being deleted: namespaces "t1" already '
                        "exists"))
    assert isinstance(again, NamespaceTerminatingError) and isinstance(again, TemporaryError)
