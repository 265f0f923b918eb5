"""The hostile-input corpus outside the template engine: names (D8), secrets' namespace (D9),
credential-named parameters (D12), empty TTL, a broken parameter schema, git-free checks."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.core.names import is_dns_label, is_dns_subdomain, is_label_value
from envforge.core.sensitive import credential_paths, is_credential_name
from envforge.errors import EnvironmentNameError, SecretDeliveryError, TemplateError, TTLError
from envforge.gitops.naming import check_custom_host, check_environment_name
from envforge.gitops.record import public_parameters
from envforge.secrets.actions import VaultSecretsInput, check_delivery_namespace


@pytest.mark.parametrize("name", ["nl1\n", "nl1\r", "a\nb", " a", "a ", "A", "-a", "a-", "",
                                  "a" * 64, "a_b", "a.b", "ä"])
def test_names_are_full_matches(name: str) -> None:
    assert not is_dns_label(name)
    with pytest.raises(EnvironmentNameError):
        check_environment_name(name)


def test_hosts_and_label_values_are_full_matches() -> None:
    assert is_dns_subdomain("shop.example.com") and not is_dns_subdomain("shop.example.com\n")
    assert is_label_value("v1.2_x") and not is_label_value("v1\n") and is_label_value("")
    with pytest.raises(Exception, match="not a DNS name"):
        check_custom_host("shop.example.com\nevil")


def _ctx(environment: str | None) -> ActionContext:
    return ActionContext(run_id="r", step_id="secrets", template_name="t", template_dir=Path("."),
                         workspace=Path("."), environment={"name": environment} if environment
                         else {}, logger=logging.getLogger("t"))


@pytest.mark.parametrize(("run_env", "given", "fragment"), [
    ("pr-1", {"environment": "pr-1", "namespace": "kube-system"}, "not the environment's own"),
    ("pr-1", {"environment": "pr-1", "namespace": "pr-2"}, "not the environment's own"),
    ("pr-1", {"environment": "pr-2"}, "not this run's environment"),
    # a run that belongs to no environment (a scaffold) has no namespace to deliver into
    (None, {"environment": "kube-system"}, "belongs to no environment"),
    (None, {"environment": "shop", "namespace": "default"}, "belongs to no environment"),
    (None, {"environment": "victim-env"}, "belongs to no environment"),
])
def test_secrets_go_only_to_the_environments_own_namespace(
        run_env: str | None, given: dict[str, str], fragment: str) -> None:
    with pytest.raises(SecretDeliveryError, match=fragment) as info:
        check_delivery_namespace(_ctx(run_env), VaultSecretsInput.model_validate(given))
    assert "\n" not in str(info.value)


def test_the_own_namespace_is_accepted() -> None:
    check_delivery_namespace(_ctx("pr-1"), VaultSecretsInput(environment="pr-1"))
    check_delivery_namespace(_ctx("pr-1"), VaultSecretsInput(environment="pr-1",
                                                             namespace="pr-1"))


@pytest.mark.parametrize("name", ["password", "db_pwd", "dbPass", "DB_PASSWORD", "pwd",
                                  "passphrase", "apiKey", "api_key", "API-KEY", "privateKey",
                                  "private_key", "clientSecret", "githubToken", "credentials",
                                  "awsSecretAccessKey", "ssh_key", "adminPw", "db.pass"])
def test_credential_names(name: str) -> None:
    assert is_credential_name(name)


@pytest.mark.parametrize("name", ["name", "replicas", "compass", "passenger", "bypass_cache",
                                  "image", "owner", "keyboardLayout", "pathPrefix"])
def test_ordinary_names(name: str) -> None:
    assert not is_credential_name(name)


def test_credentials_never_reach_the_record() -> None:
    pages = [{"properties": {"adminLogin": {"type": "string", "ui:field": "Secret"},
                             "shh": {"type": "string", "ui:widget": "password"},
                             "db": {"type": "object", "properties": {
                                 "hush": {"type": "string", "format": "password"}}},
                             "name": {"type": "string"}}}]
    marked = credential_paths(pages)
    assert marked == {"adminLogin", "shh", "db.hush"}
    values = {"name": "x", "adminLogin": "v1-secret", "shh": "v2-secret", "db_pwd": "v3",
              "dbPass": "v4", "passphrase": "v5", "db": {"hush": "v6", "host": "h"}}
    kept, dropped = public_parameters(values, marked)
    assert kept == {"name": "x", "db": {"host": "h"}}
    assert sorted(dropped) == sorted(["adminLogin", "shh", "db_pwd", "dbPass", "passphrase",
                                      "db.hush"])
    assert not any(f"v{i}" in str(kept) + str(dropped) for i in range(1, 7))


def test_an_empty_ttl_is_refused(tmp_path: Path) -> None:
    from envforge.git.publishing import GitPublisher
    from envforge.gitops.record import EnvironmentSpec
    from envforge.gitops.settings import load_gitops_settings
    from envforge.gitops.store import EnvironmentStore

    store = EnvironmentStore(GitPublisher("file:///nowhere", "main", tmp_path),
                             load_gitops_settings())
    for empty in ("", "  "):
        with pytest.raises(TTLError, match="is empty") as info:
            store.new_record("pr-1", EnvironmentSpec(template="t", owner="o"), empty)
        assert "\n" not in str(info.value)


def test_a_string_required_and_an_unknown_type_are_one_line_errors(tmp_path: Path) -> None:
    from envforge.templating.loader import load_template
    from envforge.templating.parameters import validate_parameters

    for params, fragment in (
            ("{type: object, required: name, properties: {name: {type: string}}}",
             "required: [name]"),
            ("{type: object, properties: {name: {type: strin}}}", "properties/name/type")):
        d = tmp_path / f"t{len(fragment)}" / "t"
        d.mkdir(parents=True)
        (d / "template.yaml").write_text(
            "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata: {name: t}\n"
            f"spec:\n  owner: x\n  type: service\n  parameters: {params}\n  steps: []\n")
        with pytest.raises(TemplateError, match=r"spec\.parameters") as info:
            validate_parameters(load_template(d), {"name": "x"})
        assert fragment in str(info.value) and "\n" not in str(info.value)


def test_credential_parameter_values_are_masked_in_logs_and_refused_in_git(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import uuid

    from envforge.core.secret_guard import default_guard
    from envforge.errors import SecretInGitError
    from envforge.secrets.redaction import default_redactor, mask_credential_values

    value = f"pw-{uuid.uuid4().hex}"
    marked_value = f"mk-{uuid.uuid4().hex}"
    paths = mask_credential_values({"name": "shop", "db_pwd": value, "hush": marked_value,
                                    "short": {"dbPass": "abc"}}, {"hush"})
    assert sorted(paths) == ["db_pwd", "hush", "short.dbPass"]
    with caplog.at_level(logging.INFO):
        logging.getLogger("envforge.test").info("connecting with %s and %s", value,
                                                marked_value)
    assert value not in caplog.text and marked_value not in caplog.text
    (tmp_path / "deployment.yaml").write_text(f"env: {{DB: {value}}}\n")
    with pytest.raises(SecretInGitError, match=r"deployment\.yaml"):
        default_guard(default_redactor().scrub)(tmp_path, ["deployment.yaml"])
