"""The Environment record's YAML form, parameters fit for Git, and the secret guard."""

from pathlib import Path

import pytest

from envforge.core.secret_guard import SecretGuard, scan_text
from envforge.errors import GitOpsError, SecretInGitError
from envforge.gitops.record import EnvironmentRecord, public_parameters
from tests.unit.gitops.helpers import NOW, offline_store, spec


def test_record_round_trips_through_yaml() -> None:
    record = offline_store().new_record("pr-7", spec(), "48h", "run-1", now=NOW)
    text = record.to_yaml()
    assert text.startswith("apiVersion: envforge.dev/v1alpha1\nkind: Environment\n")
    again = EnvironmentRecord.from_yaml(text, "environments/pr-7/environment.yaml")
    assert again == record
    assert again.status.expiresAt.isoformat() == "2026-11-26T12:00:00+00:00"
    assert again.status.url == f"https://{again.status.host}"


def test_a_broken_record_names_its_file() -> None:
    with pytest.raises(GitOpsError, match=r"environments/x/environment\.yaml"):
        EnvironmentRecord.from_yaml("kind: Nope\n", "environments/x/environment.yaml")


def test_extend_never_shortens() -> None:
    record = offline_store().new_record("pr-7", spec(), "5d", now=NOW)
    assert record.extended(3600, now=NOW).status.expiresAt == record.status.expiresAt
    assert (record.extended(6 * 86400, now=NOW).status.expiresAt - NOW).days == 6


def test_credential_looking_parameters_are_not_recorded() -> None:
    kept, dropped = public_parameters({"name": "x", "dbPassword": "hunter22",
                                       "nested": {"apiKey": "k", "size": 2}})
    assert kept == {"name": "x", "nested": {"size": 2}}
    assert dropped == ["dbPassword", "nested.apiKey"]


@pytest.mark.parametrize(("text", "what"), [
    ("key: |\n  -----BEGIN OPENSSH PRIVATE KEY-----\n  abc\n", "a private key"),
    ("id: AKIAABCDEFGHIJKLMNOP\n", "an AWS access key id"),
    ("url: https://bot:s3cr3tpass@git.example.com/r.git\n", "a password in a URL"),
    ("token: ghp_" + "a" * 36 + "\n", "a GitHub token"),
    ("token: hvs." + "b" * 30 + "\n", "a Vault token"),
])
def test_credential_patterns_are_found(text: str, what: str) -> None:
    assert what in scan_text(text)


def test_ordinary_manifests_pass_the_guard() -> None:
    assert scan_text("image: registry.local:5000/app:latest\nurl: https://example.com/x\n") == []


def test_the_guard_names_the_file_not_the_value(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "cm.yaml").write_text("data:\n  password: correct-horse-battery\n")
    (tmp_path / "m" / "ok.yaml").write_text("data: {}\n")
    guard = SecretGuard(known_secrets=["correct-horse-battery", "ab"])
    with pytest.raises(SecretInGitError) as info:
        guard(tmp_path, ["m/cm.yaml", "m/ok.yaml", "m/removed.yaml"])
    message = str(info.value)
    assert "m/cm.yaml" in message and "secret known to this run" in message
    assert "correct-horse-battery" not in message and "ok.yaml" not in message
    guard(tmp_path, ["m/ok.yaml"])  # short known values ("ab") are not searched for


def test_values_the_redactor_knows_are_found() -> None:
    def scrub(text: str) -> str:
        return text.replace("vault-value-1", "***")

    assert scan_text("x: vault-value-1\n", scrub=scrub) == [
        "the value of a secret known to this run"]
