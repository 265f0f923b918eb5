"""The typed settings: flat ENVFORGE_* names, sections, errors, and the generated docs page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from envforge.core.config import PROJECT_ROOT, load_settings, settings_view
from envforge.errors import ConfigurationError
from envforge.gitops.settings import gitops_settings
from envforge.settings import (
    EnvforgeSettings,
    GitOpsSection,
    PathsSection,
    Section,
    env_name,
    settings_markdown,
)


def test_the_historical_variable_names_set_their_fields() -> None:
    settings = EnvforgeSettings.from_environ({
        "ENVFORGE_HOME": "/srv/envforge",
        "ENVFORGE_TEMPLATES_PATH": "/a:/b:",
        "ENVFORGE_GITOPS_URL": "https://git.example.com/gitops.git",
        "ENVFORGE_MAX_PARALLEL_STEPS": "2",
        "ENVFORGE_FETCH_ALLOW": "https://a.example/, https://b.example/ ",
        "ENVFORGE_SLEEP_COUNTS_TOWARD_EXPIRY": "off",
        "ENVFORGE_GITHUB_WEBHOOK_SECRET": "s3cret-value",
        "KUBECONFIG": "/tmp/kubeconfig",
    })
    assert settings.paths.home == Path("/srv/envforge")
    assert settings.paths.templates_path == (Path("/a"), Path("/b"))
    assert settings.gitops_url == "https://git.example.com/gitops.git"
    assert settings.runner.max_parallel_steps == 2
    assert settings.fetch.allow == ("https://a.example/", "https://b.example/")
    assert settings.lifecycle.sleep_counts_toward_expiry is False
    assert settings.webhooks.github_secret is not None
    assert settings.webhooks.github_secret.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings)
    assert settings.cluster.configured


def test_defaults_without_any_variable_and_empty_means_unset() -> None:
    settings = EnvforgeSettings.from_environ({"ENVFORGE_GITOPS_BRANCH": "", "ENVFORGE_HOME": "/h"})
    assert settings.gitops.branch == "main"
    assert settings.gitops_url == "file:///h/gitops.git"
    assert settings.paths.templates_path == (PROJECT_ROOT / "templates",)
    assert settings.runner.max_parallel_steps == 4
    assert not settings.cluster.configured


def test_a_bad_value_is_one_line_naming_the_variable_not_the_value() -> None:
    with pytest.raises(ConfigurationError) as caught:
        EnvforgeSettings.from_environ({"ENVFORGE_MAX_PARALLEL_STEPS": "many-steps"})
    message = str(caught.value)
    assert message.startswith("ENVFORGE_MAX_PARALLEL_STEPS: ")
    assert "\n" not in message and "many-steps" not in message
    with pytest.raises(ConfigurationError, match=r"ENVFORGE_MAX_PARALLEL_STEPS: .*greater than"):
        EnvforgeSettings.from_environ({"ENVFORGE_MAX_PARALLEL_STEPS": "0"})


def test_sections_are_built_without_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVFORGE_GITOPS_BRANCH", "from-the-environment")
    section = GitOpsSection(url="file:///x.git")
    assert section.branch == "main"
    settings = EnvforgeSettings.from_environ({}).model_copy(update={"gitops": section})
    assert settings.gitops_url == "file:///x.git"
    assert load_settings().gitops_branch == "from-the-environment"


def test_the_views_keep_their_shape() -> None:
    settings = EnvforgeSettings.from_environ({"ENVFORGE_HOME": "/h", "ENVFORGE_MAX_TTL": "3d",
                                              "ENVFORGE_GITOPS_BRANCH": "envs"})
    view = settings_view(settings)
    assert (view.home, view.gitops_branch, view.cache_dir) == (Path("/h"), "envs",
                                                               Path("/h/cache"))
    assert gitops_settings(settings).max_ttl_seconds == 3 * 86400


def test_every_field_names_its_variable_and_is_described() -> None:
    names: list[str] = []
    for section in EnvforgeSettings.model_fields.values():
        model = section.annotation
        assert isinstance(model, type) and issubclass(model, Section)
        assert model.__doc__
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            names.append(env_name(field))
    assert len(names) == len(set(names)), "two fields read the same variable"
    assert env_name(PathsSection.model_fields["home"]) == "ENVFORGE_HOME"


def test_every_envforge_variable_the_code_names_is_a_setting() -> None:
    """A variable named in envforge/ but missing from the model would be read somewhere else."""
    known = {env_name(f) for s in EnvforgeSettings.model_fields.values()
             for f in s.annotation.model_fields.values()}  # type: ignore[union-attr]
    text = "\n".join(p.read_text(encoding="utf-8") for folder in ("envforge", "flows", "blocks")
                     for p in (PROJECT_ROOT / folder).rglob("*.py"))
    named = set(re.findall(r"\bENVFORGE_[A-Z0-9_]*[A-Z0-9]\b", text)) - {"ENVFORGE_"}
    # read by other tools, not by envforge: the test suite's cluster and the services scripts
    outside = {"ENVFORGE_TEST_KUBECONFIG"}
    assert named - known - outside == set()


def test_docs_settings_page_is_generated_from_the_model() -> None:
    page = PROJECT_ROOT / "docs" / "settings.md"
    assert page.read_text(encoding="utf-8") == settings_markdown(), (
        "docs/settings.md is stale: run python -m envforge.settings --markdown > docs/settings.md")


def test_the_module_prints_the_page() -> None:
    done = subprocess.run([sys.executable, "-m", "envforge.settings", "--markdown"],
                          capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert done.stdout == settings_markdown()
    assert "| `ENVFORGE_GITOPS_URL` |" in done.stdout


def test_as_environ_gives_back_the_variables_that_were_set() -> None:
    environ = {"ENVFORGE_HOME": "/h", "ENVFORGE_TEMPLATES_PATH": "/a:/b",
               "ENVFORGE_FETCH_ALLOW": "https://a.example/ https://b.example/",
               "ENVFORGE_GITHUB_TOKEN": "tok-123", "ENVFORGE_SERVER_DRY_RUN": "false"}
    given = EnvforgeSettings.from_environ(environ).as_environ()
    assert given.items() >= environ.items()
    assert given["ENVFORGE_GITOPS_BRANCH"] == "main"  # defaults too: the reader's may differ
    assert EnvforgeSettings.from_environ(given) == EnvforgeSettings.from_environ(environ)
