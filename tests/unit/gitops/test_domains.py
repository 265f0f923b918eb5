"""Custom hosts of an environment: which hosts are accepted, how the record keeps them, the
extra Ingress each one gets, and the rules that refuse a host (own, generated, another's)."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from envforge.errors import (
    ConfigurationError,
    DomainConflictError,
    DomainError,
    GitOpsError,
)
from envforge.gitops.domains import check_bindable, domain_labels
from envforge.gitops.naming import check_custom_host
from envforge.gitops.record import EnvironmentRecord
from envforge.gitops.render import render_environment
from envforge.gitops.settings import GitOpsSettings, gitops_settings
from envforge.gitops.validate import validate_objects
from envforge.settings import EnvforgeSettings
from tests.unit.gitops.helpers import DEPLOYMENT, NOW, SERVICE, offline_store, spec, write_manifests

SETTINGS = GitOpsSettings(wildcard_domain="preview.example.test")
REPO = "https://git.example.com/gitops.git"
BASE = "environments/pr-9/manifests"


def _record(name: str = "pr-9", domains: list[str] | None = None) -> EnvironmentRecord:
    record = offline_store().new_record(name, spec(), "48h", now=NOW)
    return record.model_copy(update={"spec": record.spec.model_copy(
        update={"domains": domains or []})})


def _render(tmp_path: Path, domains: list[str], files: dict[str, str] | None = None,
            settings: GitOpsSettings = SETTINGS) -> tuple[EnvironmentRecord, Any]:
    record = _record(domains=domains)
    manifests = write_manifests(tmp_path / "manifests", files)
    return record, render_environment(record, manifests, REPO, "main", settings)


def _ingresses(rendered: Any) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in rendered.objects
            if doc["kind"] == "Ingress"}


@pytest.mark.parametrize(("given", "normal"), [
    ("Shop.Example.COM", "shop.example.com"),
    ("shop.example.com.", "shop.example.com"),
    (" api.team-a.example.org ", "api.team-a.example.org"),
])
def test_custom_hosts_are_normalised(given: str, normal: str) -> None:
    assert check_custom_host(given) == normal


@pytest.mark.parametrize("bad", ["localhost", "*.example.com", "10.0.0.1", "shop_1.example.com",
                                 "-shop.example.com", "shop..example.com", "",
                                 f"{'a' * 64}.example.com", "https://shop.example.com"])
def test_hosts_that_are_not_dns_names_are_refused(bad: str) -> None:
    with pytest.raises(DomainError, match="is not a DNS name"):
        check_custom_host(bad)


def test_the_record_keeps_domains_normalised_and_old_records_unchanged() -> None:
    plain = _record()
    assert plain.spec.domains == []
    assert "domains" not in plain.to_yaml()  # records written before domains read the same
    assert EnvironmentRecord.from_yaml(plain.to_yaml(), "x").spec.domains == []

    data = yaml.safe_load(plain.to_yaml())
    data["spec"]["domains"] = ["Shop.Example.com", "shop.example.com.", "api.example.com"]
    loaded = EnvironmentRecord.from_yaml(yaml.safe_dump(data), "x")
    assert loaded.spec.domains == ["shop.example.com", "api.example.com"]
    assert yaml.safe_load(loaded.to_yaml())["spec"]["domains"] == loaded.spec.domains

    data["spec"]["domains"] = ["not a host"]
    with pytest.raises(GitOpsError, match=r"environments/pr-9/environment\.yaml: not a valid"):
        EnvironmentRecord.from_yaml(yaml.safe_dump(data), "environments/pr-9/environment.yaml")


def test_each_custom_host_gets_an_ingress_routed_like_the_main_one(tmp_path: Path) -> None:
    record, rendered = _render(tmp_path, ["shop.example.com", "api.example.org"])
    assert f"{BASE}/envforge-domain-shop-example-com.yaml" in rendered.files
    assert f"{BASE}/envforge-domain-api-example-org.yaml" in rendered.files
    ingresses = _ingresses(rendered)
    main = ingresses["app"]
    shop = ingresses["envforge-domain-shop-example-com"]
    assert shop["metadata"]["namespace"] == "pr-9"
    assert shop["metadata"]["labels"]["envforge.dev/environment"] == "pr-9"
    assert shop["spec"]["ingressClassName"] == "nginx"
    assert [r["host"] for r in shop["spec"]["rules"]] == ["shop.example.com"]
    assert shop["spec"]["rules"][0]["http"] == main["spec"]["rules"][0]["http"]
    assert shop["spec"]["rules"][0]["http"]["paths"][0]["backend"] == {
        "service": {"name": "app", "port": {"name": "http"}}}
    assert shop["spec"]["tls"] == [{"hosts": ["shop.example.com"],
                                    "secretName": "tls-shop-example-com"}]
    assert main["spec"]["rules"][0]["host"] == record.status.host  # main Ingress unchanged
    assert "&id" not in rendered.files[f"{BASE}/envforge-domain-shop-example-com.yaml"]
    validate_objects(rendered.objects, "1.31")


def test_a_service_without_ingress_routes_custom_hosts_like_envforge_ingress(
        tmp_path: Path) -> None:
    _, rendered = _render(tmp_path, ["shop.example.com"],
                          {"deployment.yaml": DEPLOYMENT, "service.yaml": SERVICE})
    ingresses = _ingresses(rendered)
    assert set(ingresses) == {"envforge-ingress", "envforge-domain-shop-example-com"}
    assert (ingresses["envforge-domain-shop-example-com"]["spec"]["rules"][0]["http"]
            == ingresses["envforge-ingress"]["spec"]["rules"][0]["http"])
    validate_objects(rendered.objects, "1.31")


def test_custom_hosts_need_something_to_route_to(tmp_path: Path) -> None:
    with pytest.raises(DomainError, match="no Ingress to route its custom hosts"):
        _render(tmp_path, ["shop.example.com"], {"deployment.yaml": DEPLOYMENT})


def test_the_tls_secret_name_follows_the_setting(tmp_path: Path) -> None:
    settings = gitops_settings(EnvforgeSettings.from_environ(
        {"ENVFORGE_CUSTOM_DOMAIN_TLS_SECRET_TEMPLATE": "{environment}-{label}"}))
    _, rendered = _render(tmp_path, ["shop.example.com"], settings=settings)
    tls = _ingresses(rendered)["envforge-domain-shop-example-com"]["spec"]["tls"]
    assert tls[0]["secretName"] == "pr-9-shop-example-com"
    for bad in ("{host}-tls", "TLS_{label}"):
        with pytest.raises(ConfigurationError, match="ENVFORGE_CUSTOM_DOMAIN_TLS_SECRET"):
            _render(tmp_path / bad, ["shop.example.com"],
                    settings=GitOpsSettings(custom_domain_tls_secret_template=bad))


def test_hosts_folding_to_one_label_get_distinct_files() -> None:
    labels = domain_labels(["a-b.example.com", "a.b-example.com", "c.example.com"])
    assert labels["c.example.com"] == "c-example-com"
    assert labels["a-b.example.com"] != labels["a.b-example.com"]
    assert all(label.startswith("a-b-example-com-") for host, label in labels.items()
               if host != "c.example.com")
    long_host = ".".join(["x" * 60] * 4)
    (label,) = domain_labels([long_host]).values()
    assert len(label) <= 200 and label[-1].isalnum()


def test_what_may_not_be_bound() -> None:
    mine, other = _record("pr-1"), _record("pr-2", ["shop.example.com"])
    with pytest.raises(DomainError, match="own generated host"):
        check_bindable(mine.status.host, mine, [mine, other], SETTINGS)
    with pytest.raises(DomainConflictError, match="already bound to environment 'pr-2'") as e:
        check_bindable("shop.example.com", mine, [mine, other], SETTINGS)
    assert e.value.environment == "pr-2" and e.value.host == "shop.example.com"
    with pytest.raises(DomainConflictError, match="'pr-2'"):
        check_bindable(other.status.host, mine, [mine, other], SETTINGS)
    for generated in ("pr-7-abcdefghij.preview.example.test", "preview.example.test"):
        with pytest.raises(DomainError, match="shape of the hosts envforge generates"):
            check_bindable(generated, mine, [mine, other], SETTINGS)
    # names under the wildcard domain that envforge never generates are fine, as are others
    check_bindable("shop.preview.example.test", mine, [mine, other], SETTINGS)
    check_bindable("api.example.com", mine, [mine, other], SETTINGS)


def test_the_conflict_scan_reads_records_that_mention_the_host_in_any_case(
        tmp_path: Path) -> None:
    from envforge.gitops.store import _records_mentioning

    for name, domains in (("pr-1", []), ("pr-2", ["api.example.com"])):
        file = tmp_path / "environments" / name / "environment.yaml"
        file.parent.mkdir(parents=True)
        file.write_text(_record(name, domains).to_yaml().replace("api.example.com",
                                                                  "API.Example.com"))
    assert [r.name for r in _records_mentioning(tmp_path, "api.example.com")] == ["pr-2"]
    assert _records_mentioning(tmp_path, "shop.example.com") == []
