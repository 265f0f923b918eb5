"""Hostile publish:github / publish:gitlab / pull-request runs against the provider stand-in
and a real Git smart-HTTP server: the token never leaves the configured provider, the target
repository's links and .git are never written through, and rollback deletes only what the
run created. Each case failed on the code before envforge.capabilities."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from envforge.actions.registry import default_registry
from envforge.errors import StepFailedError
from envforge.run.runner import TemplateRun
from envforge.templating.loader import load_template
from tests.git_http import GitHttpServer
from tests.integration.providers.test_publishers import TOKEN, _files, _template
from tests.standins.git_provider import ProviderStandIn


@pytest.fixture
def github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderStandIn]:
    """The GitHub stand-in and a Git server, configured as the operator's provider."""
    root = tmp_path / "git"
    root.mkdir()
    with GitHttpServer(root, "x-access-token", TOKEN, protect="all") as git, \
            ProviderStandIn(root, git, TOKEN) as stand_in:
        monkeypatch.setenv("ENVFORGE_GITHUB_API_URL", stand_in.base + "/github")
        monkeypatch.setenv("ENVFORGE_GITHUB_GIT_URL", git.url(""))
        monkeypatch.setenv("ENVFORGE_GITHUB_TOKEN", TOKEN)
        yield stand_in


def _run(directory: Path) -> TemplateRun:
    return TemplateRun(load_template(directory), {}, registry=default_registry())


def _fail(directory: Path) -> str:
    run = _run(directory)
    try:
        with pytest.raises(StepFailedError) as info:
            run.run()
    finally:
        run.close()
    message = str(info.value)
    assert "\n" not in message and TOKEN not in message
    return message


@pytest.mark.parametrize("repo_url", [
    "evil.example?owner=acme&repo=shop",             # another host: the token would go there
    "github.com.evil.example?owner=acme&repo=shop",
    "127.0.0.1:9?owner=acme&repo=shop",
])
def test_a_repo_url_naming_another_host_is_refused_before_any_request(
        tmp_path: Path, github: ProviderStandIn, repo_url: str) -> None:
    directory = _template(tmp_path, f"""\
        - id: publish
          action: publish:github
          input: {{repoUrl: '{repo_url}'}}
        """)
    assert "is not the configured github host 'github.com'" in _fail(directory)
    assert github.calls == []


@pytest.mark.parametrize("repo", ["newrepo/../victim-prod", "..", "a/b", "victim-prod.git",
                                  "x%2f..%2fvictim-prod", "-rf"])
def test_a_repository_name_that_could_reach_another_is_refused(
        tmp_path: Path, github: ProviderStandIn, repo: str) -> None:
    github.make_repo("acme", "victim-prod", "main", {"prod.txt": "precious\n"})
    directory = _template(tmp_path, f"""\
        - id: publish
          action: publish:github
          input: {{repoUrl: 'github.com?owner=acme&repo={repo}'}}
        """)
    _fail(directory)
    assert [c for c in github.calls if c[0] in ("POST", "DELETE")] == []
    assert (github.git_root / "acme/victim-prod.git").exists()


def test_rollback_never_deletes_a_repository_the_run_did_not_create(
        tmp_path: Path, github: ProviderStandIn) -> None:
    github.make_repo("acme", "victim-prod", "main", {"prod.txt": "precious\n"})
    directory = _template(tmp_path, """\
        - id: publish
          action: publish:github
          input: {repoUrl: 'github.com?owner=acme&repo=victim-prod'}
        - id: later
          action: debug:wait
          input: {minutes: 100}
        """)
    assert "answered 422" in _fail(directory)  # it exists: creating it failed
    assert [c for c in github.calls if c[0] == "DELETE"] == []
    assert _files(github.git_root / "acme/victim-prod.git", "main") == {"prod.txt": "precious\n"}


def test_a_user_owner_other_than_the_token_s_is_refused(
        tmp_path: Path, github: ProviderStandIn) -> None:
    directory = _template(tmp_path, """\
        - id: publish
          action: publish:github
          input: {repoUrl: 'github.com?owner=mallory&repo=x'}
        """)
    assert "a user other than the token's" in _fail(directory)
    assert [c for c in github.calls if c[0] == "POST"] == []


def _pr_template(tmp_path: Path, files: dict[str, str], target: str = ".") -> Path:
    directory = _template(tmp_path, f"""\
        - id: pr
          action: publish:github:pull-request
          input:
            repoUrl: github.com?owner=acme&repo=app
            branchName: envforge-change
            title: change
            sourcePath: out
            targetPath: '{target}'
        """)
    # the workspace content comes from a second fetch of a folder the template ships
    out = directory / "out"
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    text = (directory / "template.yaml").read_text().replace(
        "    - id: pr", "    - id: out\n      action: fetch:plain\n"
        "      input: {url: ./out, targetPath: out}\n    - id: pr", 1)
    (directory / "template.yaml").write_text(text)
    return directory


def test_a_pull_request_never_writes_through_the_target_repository_s_links(
        tmp_path: Path, github: ProviderStandIn) -> None:
    outside = tmp_path / "outside-site-packages"
    outside.mkdir()
    seed = tmp_path / "seed"
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True)
    (seed / "venv/lib/python3.11").mkdir(parents=True)
    (seed / "venv/lib/python3.11/site-packages").symlink_to(outside)
    (seed / "README.md").write_text("app\n")
    git = ["git", "-C", str(seed), "-c", "user.name=s", "-c", "user.email=s@x"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "seed"], check=True)
    bare = github.make_repo("acme", "app", "main")
    subprocess.run([*git, "push", "-q", str(bare), "HEAD:main"], check=True)
    directory = _pr_template(tmp_path, {
        "venv/lib/python3.11/site-packages/evil.pth": "import os; os.system('id')\n"})
    message = _fail(directory)
    assert "site-packages" in message and "symbolic link" in message
    assert list(outside.iterdir()) == []
    assert [c for c in github.calls if c[1].endswith("/pulls")] == []


@pytest.mark.parametrize("target", [".git", ".GIT", ".git ", "sub/../.git", "x/.Git/hooks"])
def test_a_pull_request_never_targets_the_clone_s_git_folder(
        tmp_path: Path, github: ProviderStandIn, target: str) -> None:
    github.make_repo("acme", "app", "main", {"README.md": "app\n"})
    directory = _pr_template(tmp_path, {"config": "[remote \"origin\"]\n\treceivepack = "
                                        "touch /tmp/envforge-pwned\n"}, target)
    _fail(directory)
    assert [c for c in github.calls if c[1].endswith("/pulls")] == []


def test_git_folders_in_any_case_never_reach_the_workspace_or_the_repository(
        tmp_path: Path, github: ProviderStandIn) -> None:
    bare = github.make_repo("acme", "app", "main", {"README.md": "app\n"})
    directory = _pr_template(tmp_path, {
        ".GIT/config": "[core]\n\thooksPath = /tmp\n", "service.yaml": "a: 1\n"})
    assert "'out/.GIT/config' is inside '.git'" in _fail(directory)
    branches = subprocess.run(["git", "--git-dir", str(bare), "branch", "--list"],
                              capture_output=True, text=True, check=True).stdout
    assert "envforge-change" not in branches
