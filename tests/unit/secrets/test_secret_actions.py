"""vault:secrets and kubernetes:secret in a dry run (no Vault, no cluster), their static check,
and the errors they give when used wrongly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from envforge.actions.base import ActionContext
from envforge.errors import SecretDeliveryError, StepFailedError
from envforge.run.runner import TemplateRun
from envforge.secrets.actions import (
    KubernetesSecret,
    KubernetesSecretInput,
    VaultSecrets,
    VaultSecretsInput,
)
from envforge.templating.loader import load_template
from tests.services_fixtures import make_services

TEMPLATE = """\
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: dry-secrets}
spec:
  type: service
  parameters: [{properties: {name: {type: string}}, required: [name]}]
  variables:
    LOG_LEVEL: info
    PASSWORD: vault:kv/dry-secrets/db#password
  steps:
    - id: secrets
      action: vault:secrets
      input: {environment: "${{ parameters.name }}", overrides: {LOG_LEVEL: debug}}
    - id: deliver
      action: kubernetes:secret
    - id: publish
      action: publish:git
      input: {targetPath: "environments/${{ parameters.name }}"}
"""


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "dry-secrets"
    directory.mkdir()
    (directory / "template.yaml").write_text(TEMPLATE)
    return directory


def test_dry_run_renders_the_config_map_and_names_the_secret(template_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    run = TemplateRun(load_template(template_dir), {"name": "pr-5"}, dry_run=True)
    try:
        result = run.run()
        config_map = yaml.safe_load((run.workspace / "manifests" / "configmap.yaml").read_text())
    finally:
        run.close()
    assert config_map["data"]["LOG_LEVEL"] == "debug" and "PASSWORD" not in config_map["data"]
    secrets = run.outputs["secrets"]
    assert secrets["secretKeys"] == ["PASSWORD"] and secrets["vaultReads"] == 0
    assert secrets["scopes"]["LOG_LEVEL"] == "environment"
    assert run.outputs["deliver"]["secretName"] == "pr-5-secrets"
    assert run.outputs["deliver"]["delivered"] is False
    assert [s.status for s in result.steps] == ["dry-run", "dry-run", "faked"]


def test_check_finds_secret_expressions_in_git_bound_steps(template_dir: Path) -> None:
    text = TEMPLATE.replace('targetPath: "environments/${{ parameters.name }}"',
                            'targetPath: "x", commitMessage: "${{ secrets.TOKEN }}"')
    (template_dir / "template.yaml").write_text(text)
    problems = VaultSecrets().check(VaultSecretsInput(environment="pr-5"), template_dir)
    assert problems == ["step 'publish' (publish:git) input.commitMessage: secret reference "
                        "in a field that ends up in Git"]


def test_a_real_run_without_vault_settings_fails_before_anything(
    template_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    run = TemplateRun(load_template(template_dir), {"name": "pr-6"}, environment={"name": "pr-6"},
                      services=make_services())
    try:
        with pytest.raises(StepFailedError, match="VAULT_ADDR and VAULT_TOKEN") as info:
            run.run()
    finally:
        run.close()
    assert info.value.step_id == "secrets" and info.value.rolled_back == []


def test_kubernetes_secret_without_a_vault_step_says_so(tmp_path: Path) -> None:
    ctx = ActionContext(run_id="r1", step_id="deliver", template_name="t",
                        template_dir=tmp_path, workspace=tmp_path)
    with pytest.raises(SecretDeliveryError, match="no secrets from step 'secrets'"):
        KubernetesSecret().run(ctx, KubernetesSecretInput())


def test_environment_names_must_be_labels() -> None:
    with pytest.raises(ValueError, match="environment"):
        VaultSecretsInput(environment="Not_A_Label")


def test_external_secrets_delivery_never_contacts_vault(template_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    text = TEMPLATE.replace('overrides: {LOG_LEVEL: debug}}',
                            'overrides: {LOG_LEVEL: debug}, delivery: external-secrets}')
    text = text.split("    - id: publish")[0]
    (template_dir / "template.yaml").write_text(text)
    monkeypatch.delenv("VAULT_ADDR", raising=False)  # a real run, and no Vault to ask
    monkeypatch.delenv("KUBECONFIG", raising=False)
    run = TemplateRun(load_template(template_dir), {"name": "pr-7"}, environment={"name": "pr-7"})
    try:
        run.run()
        manifest = yaml.safe_load(
            (run.workspace / "manifests" / "externalsecret.yaml").read_text())
    finally:
        run.close()
    assert manifest["kind"] == "ExternalSecret"
    assert manifest["spec"]["data"] == [{"secretKey": "PASSWORD", "remoteRef": {
        "key": "kv/dry-secrets/db", "property": "password"}}]
    assert run.outputs["secrets"]["vaultReads"] == 0
    assert run.outputs["deliver"]["delivered"] is False
