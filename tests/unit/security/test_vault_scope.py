"""A template reads only the Vault paths it was given (``ENVFORGE_VAULT_TEMPLATE_PATHS``,
default each template's own folder ``*/{template}/**``): neither its variables nor a
developer's form credentials can name another team's secret and have it delivered into the
environment's namespace. Refused in one line before Vault is asked anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.capabilities import Capabilities, VaultScope
from envforge.environments.forms import resolve_credential_references, submission_from_form
from envforge.errors import SecretReferenceError, StepFailedError
from envforge.run.runner import TemplateRun
from envforge.settings import EnvforgeSettings
from envforge.templating.loader import load_template
from tests.services_fixtures import make_services
from tests.unit.test_environment_forms import _FakeReader, _FakeSource, _template


@pytest.mark.parametrize(("location", "allowed"), [
    ("kv/preview-app/api", True),
    ("secret/preview-app/team/db", True),
    ("kv/other-team/api", False),
    ("kv/x/preview-app/api", False),  # the folder is the template's only at the top
    ("kv/preview-app", True),  # a secret named after the template is its own too
    ("kv/preview-appx/api", False),
])
def test_the_default_scope_is_the_templates_own_folder(location: str, allowed: bool) -> None:
    assert VaultScope().allows(location, "preview-app") is allowed


def test_operator_patterns_and_a_template_name_is_never_a_glob() -> None:
    scope = VaultScope(("kv/shared/*", "*/{template}/**"))
    assert scope.allows("kv/shared/smtp", "t") and not scope.allows("kv/shared/a/b", "t")
    assert not VaultScope().allows("kv/anything/x", "*")  # a template called '*'
    assert VaultScope(("**",)).allows("any/path/at/all", "t")


TEMPLATE = """\
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: team-a-app}
spec:
  type: service
  parameters: [{properties: {name: {type: string}}, required: [name]}]
  variables:
    PASSWORD: vault:kv/payments/prod-db#password
  steps:
    - id: secrets
      action: vault:secrets
      input: {environment: "${{ parameters.name }}"}
    - id: deliver
      action: kubernetes:secret
"""


def test_a_template_naming_another_teams_secret_is_refused_before_vault(
        tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "template.yaml").write_text(TEMPLATE)
    # no Vault is configured at all: the refusal must come before any attempt to reach it
    run = TemplateRun(load_template(tmp_path / "t"), {"name": "pr-9"},
                      environment={"name": "pr-9"}, services=make_services({}))
    try:
        with pytest.raises(StepFailedError, match=r"variable PASSWORD: Vault path "
                           r"'kv/payments/prod-db' is not one template 'team-a-app' may read "
                           r"\(it may read \*/team-a-app/\*\*\)") as caught:
            run.run()
    finally:
        run.close()
    assert "\n" not in str(caught.value) and caught.value.rolled_back == []
    # the operator gives it that folder: the same run gets as far as Vault (none here)
    given = make_services({"ENVFORGE_VAULT_TEMPLATE_PATHS": "kv/payments/*"})
    run = TemplateRun(load_template(tmp_path / "t"), {"name": "pr-9"},
                      environment={"name": "pr-9"}, services=given)
    try:
        with pytest.raises(StepFailedError, match="VAULT_ADDR and VAULT_TOKEN"):
            run.run()
    finally:
        run.close()


def test_a_form_credential_outside_the_templates_folder_is_never_read() -> None:
    template = _template({"name": {"type": "string"},
                          "dbPassword": {"type": "string", "format": "password"}})
    submission = submission_from_form(template, {
        "name": "pr-1", "dbPassword": "vault:kv/payments/prod-db#password"})
    reader = _FakeReader({"vault:kv/payments/prod-db#password": "real-prod-password"})
    source = _FakeSource(reader)
    with pytest.raises(SecretReferenceError, match=r"form field 'dbPassword': Vault path "
                       r"'kv/payments/prod-db' is not one template 'with-db' may read"):
        resolve_credential_references(submission, source)  # type: ignore[arg-type]
    assert source.asked == []  # Vault was never asked


def test_the_setting_reaches_the_capability() -> None:
    settings = EnvforgeSettings.from_environ(
        {"ENVFORGE_VAULT_TEMPLATE_PATHS": "kv/shared/*, */{template}/**"})
    assert Capabilities.from_settings(settings).vault_scope.patterns == (
        "kv/shared/*", "*/{template}/**")
    assert Capabilities.from_settings(EnvforgeSettings.from_environ({})).vault_scope == \
        VaultScope()
