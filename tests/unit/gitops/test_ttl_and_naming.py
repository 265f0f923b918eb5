"""TTL parsing and limits; environment names, their length budget and hosts."""

import pytest

from envforge.errors import EnvironmentNameError, TTLError
from envforge.gitops.naming import (
    HOST_SUFFIX_LENGTH,
    MAX_NAME,
    check_environment_name,
    environment_host,
)
from envforge.gitops.ttl import checked_ttl, format_duration, parse_ttl


@pytest.mark.parametrize(("text", "seconds"), [
    ("48h", 48 * 3600), ("3d", 3 * 86400), ("90m", 5400), ("1d12h", 36 * 3600),
    ("1w", 7 * 86400), (" 2H ", 7200)])
def test_ttls_parse(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "48", "h", "2 days", "-1h", "1.5h", "0h", "3y"])
def test_unparsable_ttls_are_refused_with_the_format(text: str) -> None:
    with pytest.raises(TTLError, match="--ttl") as info:
        parse_ttl(text)
    assert "48h" in str(info.value) or "longer than zero" in str(info.value)


def test_a_ttl_over_the_maximum_is_refused() -> None:
    assert checked_ttl("14d", 14 * 86400) == 14 * 86400
    with pytest.raises(TTLError, match=r"exceeds the maximum of 14d.*ENVFORGE_MAX_TTL"):
        checked_ttl("15d", 14 * 86400)


def test_durations_format_shortly() -> None:
    assert format_duration(2 * 86400 + 3 * 3600 + 60) == "2d3h"
    assert format_duration(45 * 60) == "45m"
    assert format_duration(12) == "12s"


@pytest.mark.parametrize("name", ["Pr-1", "pr_1", "-pr", "pr-", "pr.1", "", "1pr", "pr 1"])
def test_names_that_are_not_dns_labels_are_refused(name: str) -> None:
    with pytest.raises(EnvironmentNameError, match=repr(name).replace("[", r"\[")):
        check_environment_name(name)


def test_names_must_leave_room_for_derived_names() -> None:
    longest = "a" * MAX_NAME
    assert check_environment_name(longest) == longest
    with pytest.raises(EnvironmentNameError, match=f"at most {MAX_NAME}"):
        check_environment_name("a" * (MAX_NAME + 1))
    host_label = environment_host(longest, "preview.example.test").split(".")[0]
    assert len(host_label) <= 63 and len(f"{longest}-vcluster") <= 63


def test_hosts_are_random_under_the_wildcard_domain() -> None:
    hosts = {environment_host("pr-1", "Preview.Example.Test.") for _ in range(50)}
    assert len(hosts) == 50
    for host in hosts:
        label, _, domain = host.partition(".")
        assert domain == "preview.example.test"
        assert label.startswith("pr-1-") and len(label) == len("pr-1-") + HOST_SUFFIX_LENGTH


def test_a_bad_wildcard_domain_is_named() -> None:
    with pytest.raises(EnvironmentNameError, match="ENVFORGE_WILDCARD_DOMAIN"):
        environment_host("pr-1", "bad_domain.test")


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-anything", "argocd"])
def test_system_namespaces_are_reserved(name: str) -> None:
    with pytest.raises(EnvironmentNameError, match="is reserved"):
        check_environment_name(name)


def test_the_platforms_own_namespaces_are_reserved_too() -> None:
    from envforge.gitops.settings import GitOpsSettings
    from tests.unit.gitops.helpers import offline_store, spec

    store = offline_store()
    store.settings = GitOpsSettings(argocd_namespace="gitops-system")
    with pytest.raises(EnvironmentNameError, match="'gitops-system' is reserved"):
        store.new_record("gitops-system", spec(), "1d")
