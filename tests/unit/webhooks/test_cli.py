from __future__ import annotations

from pathlib import Path

import pytest

from envforge.cli import main
from envforge.cli.webhook import build_mapping, load_credentials
from envforge.errors import ConfigurationError
from tests.services_fixtures import make_services


def test_serve_without_any_secret_is_a_one_line_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.delenv("ENVFORGE_GITHUB_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("ENVFORGE_GITLAB_WEBHOOK_TOKEN", raising=False)
    assert main(["webhook", "serve", "--template", "python-service", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ENVFORGE_GITHUB_WEBHOOK_SECRET" in err


def test_serve_without_a_template_source_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="--mapping FILE"):
        build_mapping(None, None)


def test_template_option_becomes_the_default(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("repositories: {a/b: node-service}\n")
    mapping = build_mapping(path, "python-service")
    assert mapping.template_for("a/b").template == "node-service"  # type: ignore[union-attr]
    assert mapping.template_for("x/y").template == "python-service"  # type: ignore[union-attr]


def test_credentials_from_the_settings() -> None:
    services = make_services({"ENVFORGE_GITLAB_WEBHOOK_TOKEN": "tok"})
    assert load_credentials(None, services).enabled == ["gitlab"]
