"""publish:azure and github:webhook end to end: the REST side against the provider stand-in
(tests/standins/git_provider), the git side against a real Git smart-HTTP server, through
TemplateRun with services that configure the providers as an operator would."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from envforge.actions.registry import default_registry
from envforge.capabilities import Capabilities, EgressPolicy, ProviderEndpoint
from envforge.errors import StepFailedError
from envforge.run.runner import TemplateRun
from envforge.services import Services
from envforge.settings import load_settings
from envforge.templating.loader import load_template
from tests.git_http import GitHttpServer
from tests.integration.providers.test_publishers import TOKEN, _files, _template
from tests.standins.git_provider import ProviderStandIn


@dataclass
class Provider:
    stand_in: ProviderStandIn
    git: GitHttpServer
    services: Services


def _services(endpoint: ProviderEndpoint) -> Services:
    capabilities = Capabilities(egress=EgressPolicy.deny_all(),
                                providers={endpoint.provider: endpoint})
    return Services(settings=load_settings(), connections=None,  # type: ignore[arg-type]
                    capabilities=capabilities)


@pytest.fixture
def azure(tmp_path: Path) -> Iterator[Provider]:
    """Azure DevOps' API and Git (a user name, the PAT as password), configured with the
    stand-in's origins for host dev.azure.com."""
    root = tmp_path / "azure-git"
    root.mkdir()
    with GitHttpServer(root, "envforge", TOKEN, protect="all") as git, \
            ProviderStandIn(root, git, TOKEN) as stand_in:
        endpoint = ProviderEndpoint.configure("azure", "dev.azure.com", stand_in.base + "/azure",
                                              git.url(""), TOKEN)
        yield Provider(stand_in, git, _services(endpoint))


@pytest.fixture
def github(tmp_path: Path) -> Iterator[Provider]:
    root = tmp_path / "github-git"
    root.mkdir()
    with GitHttpServer(root, "x-access-token", TOKEN, protect="all") as git, \
            ProviderStandIn(root, git, TOKEN) as stand_in:
        # the operator lets templates hook acme's repositories (those the tests below use)
        endpoint = ProviderEndpoint.configure("github", None, stand_in.base + "/github",
                                              git.url(""), TOKEN, ("acme/*",))
        yield Provider(stand_in, git, _services(endpoint))


def _run(directory: Path, provider: Provider, dry_run: bool = False) -> TemplateRun:
    return TemplateRun(load_template(directory), {}, registry=default_registry(),
                       services=provider.services, dry_run=dry_run)


def _fails(directory: Path, provider: Provider) -> StepFailedError:
    run = _run(directory, provider)
    try:
        with pytest.raises(StepFailedError) as info:
            run.run()
    finally:
        run.close()
    assert "\n" not in str(info.value) and TOKEN not in str(info.value)
    return info.value


AZURE_REPO = "dev.azure.com?organization=acme&project=Shop Team&repo=web"


def test_publish_azure_creates_the_repository_and_pushes(tmp_path: Path,
                                                         azure: Provider) -> None:
    directory = _template(tmp_path, f"""\
        - id: publish
          action: publish:azure
          input: {{repoUrl: '{AZURE_REPO}', defaultBranch: main}}
        """)
    run = _run(directory, azure)
    try:
        run.run()
        output = run.outputs["publish"]
    finally:
        run.close()
    [created] = azure.stand_in.azure.repositories.values()
    assert output["repositoryId"] == created["id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", output["repositoryId"])
    # Backstage's outputs: remoteUrl as Azure DevOps answered it, the web URL as contents
    assert output["remoteUrl"] == created["remoteUrl"] and "acme@" in output["remoteUrl"]
    assert output["repoContentsUrl"] == created["webUrl"]
    bare = azure.git.project_root / "acme" / "Shop%20Team" / "_git" / "web"
    assert _files(bare, "main") == {"README.md": "# shop\n"}
    assert output["commitHash"] == _head(bare, "main")
    [(_, path, body)] = [c for c in azure.stand_in.calls if c[0] == "POST"]
    assert path == "/azure/acme/Shop Team/_apis/git/repositories?api-version=7.1"
    assert body == {"name": "web"}
    sent = azure.stand_in.headers[0]
    assert sent["Authorization"] == "Basic " + base64.b64encode(f":{TOKEN}".encode()).decode()
    assert sent["X-TFS-FedAuthRedirect"] == "Suppress"


def _head(bare: Path, ref: str) -> str:
    import subprocess

    return subprocess.run(["git", "--git-dir", str(bare), "rev-parse", ref],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_publish_azure_refuses_a_taken_name_and_deletes_nothing(tmp_path: Path,
                                                                azure: Provider) -> None:
    answer = azure.stand_in.azure.handle(
        "POST", "/azure/acme/Shop%20Team/_apis/git/repositories?api-version=7.1",
        {"name": "web"})
    assert answer is not None and answer[0] == 201
    existing = answer[1]
    directory = _template(tmp_path, f"""\
        - id: publish
          action: publish:azure
          input: {{repoUrl: '{AZURE_REPO}'}}
        """)
    error = _fails(directory, azure)
    assert "409" in str(error) and "TF400948" in str(error)
    assert existing["id"] in azure.stand_in.azure.repositories
    assert not [c for c in azure.stand_in.calls if c[0] == "DELETE"]


def test_a_failed_push_deletes_the_repository_this_run_created(tmp_path: Path,
                                                               azure: Provider) -> None:
    # the Git server takes another token than the API: the push is refused
    with GitHttpServer(azure.git.project_root, "envforge", "another-token") as other:
        endpoint = ProviderEndpoint.configure("azure", "dev.azure.com",
                                              azure.stand_in.base + "/azure", other.url(""),
                                              TOKEN)
        azure.stand_in.azure.git_url = other.url("").rstrip("/")
        provider = Provider(azure.stand_in, other, _services(endpoint))
        directory = _template(tmp_path, f"""\
            - id: publish
              action: publish:azure
              input: {{repoUrl: '{AZURE_REPO}'}}
            """)
        error = _fails(directory, provider)
    assert "git push" in str(error)
    assert azure.stand_in.azure.repositories == {}
    [delete] = [c for c in azure.stand_in.calls if c[0] == "DELETE"]
    assert delete[1].endswith("?api-version=7.1")


def test_a_failed_later_step_rolls_the_azure_repository_back(tmp_path: Path,
                                                             azure: Provider) -> None:
    directory = _template(tmp_path, f"""\
        - id: publish
          action: publish:azure
          input: {{repoUrl: '{AZURE_REPO}'}}
        - id: again
          action: publish:azure
          input: {{repoUrl: '{AZURE_REPO}'}}
        """)
    error = _fails(directory, azure)
    assert "publish" in error.rolled_back and "TF400948" in str(error)
    assert azure.stand_in.azure.repositories == {}


@pytest.mark.parametrize(("repo_url", "expected"), [
    ("dev.azure.com?project=Shop Team&repo=web", "missing organization"),
    ("dev.azure.com?organization=acme&project=Nope&repo=web", "TF200016"),
    ("dev.azure.com?organization=acme&project=Shop Team&repo=_hidden", "not a valid"),
])
def test_publish_azure_bad_locations_are_one_line(tmp_path: Path, azure: Provider,
                                                  repo_url: str, expected: str) -> None:
    directory = _template(tmp_path, f"""\
        - id: publish
          action: publish:azure
          input: {{repoUrl: '{repo_url}'}}
        """)
    assert expected in str(_fails(directory, azure))
    assert azure.stand_in.azure.repositories == {}


def test_github_webhook_creates_the_hook(tmp_path: Path, github: Provider) -> None:
    github.stand_in.make_repo("acme", "shop")
    directory = _template(tmp_path, """\
        - id: hook
          action: github:webhook
          input:
            repoUrl: github.com?owner=acme&repo=shop
            webhookUrl: https://ci.example.com/hooks/github
            webhookSecret: hook-signing-secret
            events: [push, pull_request]
            contentType: json
        """)
    run = _run(directory, github)
    try:
        run.run()
        output = run.outputs["hook"]
    finally:
        run.close()
    [hook] = github.stand_in.hooks.hooks["acme/shop"]
    assert output["createdHookId"] == hook["id"]
    assert hook["events"] == ["push", "pull_request"] and hook["active"] is True
    assert hook["config"] == {"content_type": "json", "insecure_ssl": "0",
                              "url": "https://ci.example.com/hooks/github",
                              "secret": "********"}
    assert github.stand_in.hooks.secrets[hook["id"]] == "hook-signing-secret"
    [(_, _, body)] = [c for c in github.stand_in.calls if c[0] == "POST"]
    assert TOKEN not in str(body)


def test_github_webhook_defaults_are_backstages(tmp_path: Path, github: Provider) -> None:
    github.stand_in.make_repo("acme", "shop")
    directory = _template(tmp_path, """\
        - id: hook
          action: github:webhook
          input: {repoUrl: 'github.com?owner=acme&repo=shop',
                  webhookUrl: 'https://ci.example.com/h'}
        """)
    run = _run(directory, github)
    try:
        run.run()
    finally:
        run.close()
    [(_, _, body)] = [c for c in github.stand_in.calls if c[0] == "POST"]
    assert body == {"name": "web", "events": ["push"], "active": True,
                    "config": {"url": "https://ci.example.com/h", "content_type": "form",
                               "insecure_ssl": "0"}}


def test_github_webhook_refusals_carry_githubs_reason(tmp_path: Path,
                                                      github: Provider) -> None:
    github.stand_in.make_repo("acme", "shop")
    step = """\
        - id: hook
          action: github:webhook
          input: {repoUrl: 'github.com?owner=acme&repo=shop', webhookUrl: 'URL'}
        """
    ok = _template(tmp_path / "a", step.replace("URL", "https://ci.example.com/h"))
    run = _run(ok, github)
    run.run()
    run.close()
    again = _fails(_template(tmp_path / "b", step.replace("URL", "https://ci.example.com/h")),
                   github)
    assert "422" in str(again) and "Hook already exists" in str(again)
    local = _fails(_template(tmp_path / "c", step.replace("URL", "http://localhost:9/h")),
                   github)
    assert "reachable over the public Internet" in str(local)
    missing = _fails(_template(tmp_path / "d", step.replace("repo=shop", "repo=nope")
                               .replace("URL", "https://ci.example.com/h")), github)
    assert "404" in str(missing)


def test_github_webhook_dry_run_calls_nothing(tmp_path: Path, github: Provider) -> None:
    directory = _template(tmp_path, """\
        - id: hook
          action: github:webhook
          input: {repoUrl: 'github.com?owner=acme&repo=shop',
                  webhookUrl: 'https://ci.example.com/h'}
        """)
    run = _run(directory, github, dry_run=True)
    try:
        run.run()
    finally:
        run.close()
    assert github.stand_in.calls == []


def test_a_failed_later_step_deletes_the_webhook(tmp_path: Path, github: Provider) -> None:
    github.stand_in.make_repo("acme", "shop")
    directory = _template(tmp_path, """\
        - id: hook
          action: github:webhook
          input: {repoUrl: 'github.com?owner=acme&repo=shop',
                  webhookUrl: 'https://ci.example.com/h'}
        - id: boom
          action: debug:wait
          input: {minutes: 100}
        """)
    error = _fails(directory, github)
    assert "hook" in error.rolled_back
    assert github.stand_in.hooks.hooks["acme/shop"] == []


def test_github_webhook_takes_its_token_from_the_runs_secrets(tmp_path: Path,
                                                              github: Provider) -> None:
    import dataclasses

    github.stand_in.make_repo("acme", "shop")
    endpoint = ProviderEndpoint.configure("github", None, github.stand_in.base + "/github",
                                          github.git.url(""))  # no operator token
    services = dataclasses.replace(_services(endpoint), run_secrets={"GH_TOKEN": TOKEN})
    directory = _template(tmp_path, """\
        - id: hook
          action: github:webhook
          input: {repoUrl: 'github.com?owner=acme&repo=shop',
                  webhookUrl: 'https://ci.example.com/h', token: '${{ secrets.GH_TOKEN }}'}
        """)
    run = TemplateRun(load_template(directory), {}, registry=default_registry(),
                      services=services, secret_names=["GH_TOKEN"])
    try:
        run.run()
    finally:
        run.close()
    assert len(github.stand_in.hooks.hooks["acme/shop"]) == 1
    assert github.stand_in.headers[0]["Authorization"] == f"Bearer {TOKEN}"


def test_the_operators_token_hooks_only_the_runs_own_or_listed_repositories(
        tmp_path: Path, github: Provider) -> None:
    """With the operator's token a template could subscribe a URL of its choosing to any
    repository that token administers: refused (before any request) unless this run created
    the repository or the operator listed it; a repository the run publishes is hooked."""
    import dataclasses

    github.stand_in.make_repo("acme", "payroll")
    unlisted = ProviderEndpoint.configure("github", None, github.stand_in.base + "/github",
                                          github.git.url(""), TOKEN)  # nothing listed
    provider = dataclasses.replace(github, services=_services(unlisted))
    for repo in ("payroll", "shop"):
        error = _fails(_template(tmp_path / repo, f"""\
            - id: hook
              action: github:webhook
              input: {{repoUrl: 'github.com?owner=acme&repo={repo}',
                      webhookUrl: 'https://attacker.example/h'}}
            """), provider)
        assert f"repository acme/{repo} was not created by this run" in str(error)
    assert [c for c in github.stand_in.calls if c[0] == "POST"] == []
    assert github.stand_in.hooks.hooks.get("acme/payroll", []) == []

    directory = _template(tmp_path / "own", """\
        - id: publish
          action: publish:github
          input: {repoUrl: 'github.com?owner=acme&repo=fresh', defaultBranch: main}
        - id: hook
          action: github:webhook
          input: {repoUrl: 'github.com?owner=acme&repo=fresh',
                  webhookUrl: 'https://ci.example.com/h'}
        """)
    run = _run(directory, provider)
    try:
        run.run()
    finally:
        run.close()
    [hook] = github.stand_in.hooks.hooks["acme/fresh"]
    assert run.outputs["hook"]["createdHookId"] == hook["id"]
