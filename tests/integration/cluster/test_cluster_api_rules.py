"""What the real API server refuses that a kind stand-in accepted: names that are not DNS-1123
labels, field selectors it does not support. envforge's own checks must be at least as strict
as the server, and its queries must be ones the server serves."""

from __future__ import annotations

import pytest

from envforge.cluster.client import cluster_errors, open_cluster
from envforge.errors import ClusterApiError, EnvforgeError
from envforge.gitops.naming import check_environment_name
from tests.integration.cluster.conftest import ClusterUnderTest, seed_environment
from tests.services_fixtures import make_services

NAMES = ["a.b", "x" * 64, "Upper", "-lead", "trail-", "under_score", "pr-42", "a", "x" * 40]


@pytest.mark.parametrize("name", NAMES)
def test_a_name_envforge_accepts_is_a_namespace_the_server_accepts(
        cluster: ClusterUnderTest, name: str) -> None:
    server = cluster.plane.kubectl("create", "namespace", name, "--dry-run=server",
                                   check=False)
    try:
        check_environment_name(name)
    except EnvforgeError as e:
        assert "\n" not in str(e) and name[:20] in str(e)
        return
    assert server.returncode == 0, f"envforge accepts {name!r}, the server: {server.stderr}"


def test_the_event_queries_envforge_makes_are_served(cluster: ClusterUnderTest,
                                                     env_name: str) -> None:
    pod = seed_environment(cluster, env_name, healthy=False)
    with open_cluster(make_services().connections) as reader:
        about_pod = reader.events_for(env_name, "Pod", pod)
        warnings = reader.warning_events(env_name)
        assert [e["reason"] for e in about_pod if e["reason"] == "BackOff"] == ["BackOff"]
        assert warnings and all(e["type"] == "Warning" for e in warnings)
        # an unsupported field selector: the real server answers 400 (a kind stand-in
        # ignored it), mapped to one permanent line naming the query
        with pytest.raises(ClusterApiError) as caught, cluster_errors(
                f"list events in {env_name}", reader.description):
            reader.core.list_namespaced_event(env_name, field_selector="spec.nonsense=1")
        assert "400 Bad Request" in str(caught.value) and "\n" not in str(caught.value)
        assert "field label not supported" in str(caught.value)
