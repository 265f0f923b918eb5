"""publish:github, publish:gitlab and their pull/merge-request forms, end to end: the REST
side against the provider stand-in, the git side against a real Git smart-HTTP server."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from envforge.actions.registry import default_registry
from envforge.errors import StepFailedError
from envforge.run.runner import TemplateRun
from envforge.templating.loader import load_template
from tests.git_http import GitHttpServer
from tests.standins.git_provider import ProviderStandIn

TOKEN = "prov-token-0042"


def _template(root: Path, steps: str) -> Path:
    directory = root / "tpl"
    (directory / "skeleton").mkdir(parents=True)
    (directory / "skeleton/README.md").write_text("# ${{ values.name }}\n")
    (directory / "template.yaml").write_text(textwrap.dedent("""\
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {name: publisher}
        spec:
          type: service
          steps:
            - id: fetch
              action: fetch:template
              input: {url: ./skeleton, values: {name: shop}}
        """) + textwrap.indent(textwrap.dedent(steps), "    "))
    return directory


def _files(bare: Path, ref: str) -> dict[str, str]:
    names = subprocess.run(["git", "--git-dir", str(bare), "ls-tree", "-r", "--name-only", ref],
                           capture_output=True, text=True, check=True).stdout.split()
    return {n: subprocess.run(["git", "--git-dir", str(bare), "show", f"{ref}:{n}"],
                              capture_output=True, text=True, check=True).stdout for n in names}


@pytest.fixture
def github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderStandIn]:
    root = tmp_path / "git"
    root.mkdir()
    with GitHttpServer(root, "x-access-token", TOKEN, protect="all") as git, \
            ProviderStandIn(root, git, TOKEN) as stand_in:
        monkeypatch.setenv("ENVFORGE_GITHUB_API_URL", stand_in.base + "/github")
        monkeypatch.setenv("ENVFORGE_GITHUB_GIT_URL", git.url(""))
        monkeypatch.setenv("ENVFORGE_GITHUB_TOKEN", TOKEN)
        yield stand_in


@pytest.fixture
def gitlab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderStandIn]:
    root = tmp_path / "git"
    root.mkdir()
    with GitHttpServer(root, "oauth2", TOKEN, protect="all") as git, \
            ProviderStandIn(root, git, TOKEN) as stand_in:
        monkeypatch.setenv("ENVFORGE_GITLAB_API_URL", stand_in.base + "/gitlab")
        monkeypatch.setenv("ENVFORGE_GITLAB_GIT_URL", git.url(""))
        monkeypatch.setenv("ENVFORGE_GITLAB_TOKEN", TOKEN)
        yield stand_in


def test_publish_github_creates_the_repository_and_pushes(
        tmp_path: Path, github: ProviderStandIn) -> None:
    directory = _template(tmp_path, """\
        - id: publish
          action: publish:github
          input:
            repoUrl: github.com?owner=acme&repo=shop
            defaultBranch: main
            repoVisibility: public
            token: ${{ secrets.GITHUB_TOKEN }}
            protectDefaultBranch: false
        """)
    run = TemplateRun(load_template(directory), {}, registry=default_registry(),
                      secret_names=["GITHUB_TOKEN"])
    result = run.run()
    run.close()
    out = run.outputs["publish"]
    assert out["remoteUrl"] == "https://github.test/acme/shop"
    assert out["repoContentsUrl"] == "https://github.test/acme/shop/blob/main"
    assert ("POST", "/github/orgs/acme/repos") in [(m, p) for m, p, _ in github.calls]
    bare = github.git_root / "acme/shop.git"
    assert _files(bare, "main") == {"README.md": "# shop\n"}
    assert out["commitHash"] == subprocess.run(
        ["git", "--git-dir", str(bare), "rev-parse", "main"], capture_output=True, text=True,
        check=True).stdout.strip()
    assert result.steps[-1].status == "completed"


def test_publish_then_register_in_the_catalog(
        tmp_path: Path, github: ProviderStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = _template(tmp_path, """\
        - id: publish
          action: publish:github
          input: {repoUrl: 'github.com?owner=acme&repo=shop', defaultBranch: main}
        - id: register
          action: catalog:register
          input:
            repoContentsUrl: ${{ steps.publish.output.repoContentsUrl }}
            catalogInfoPath: /catalog-info.yaml
        """)
    run = TemplateRun(load_template(directory), {}, registry=default_registry())
    with pytest.raises(StepFailedError, match="ENVFORGE_BACKSTAGE_URL"):
        run.run()  # not configured: one line, and the created repository is deleted again
    run.close()
    assert not (github.git_root / "acme/shop.git").exists()
    monkeypatch.setenv("ENVFORGE_BACKSTAGE_URL", github.base + "/backstage")
    monkeypatch.setenv("ENVFORGE_BACKSTAGE_TOKEN", TOKEN)
    run = TemplateRun(load_template(directory), {}, registry=default_registry())
    run.run()
    run.close()
    assert run.outputs["register"] == {
        "entityRef": "component:default/shop",
        "catalogInfoUrl": "https://github.test/acme/shop/blob/main/catalog-info.yaml"}


def test_a_failed_later_step_deletes_the_created_repository(
        tmp_path: Path, github: ProviderStandIn) -> None:
    directory = _template(tmp_path, """\
        - id: publish
          action: publish:github
          input: {repoUrl: 'github.com?owner=jane&repo=tmp'}
        - id: boom
          action: debug:wait
          input: {minutes: 100}
        """)
    run = TemplateRun(load_template(directory), {}, registry=default_registry())
    with pytest.raises(StepFailedError) as info:
        run.run()
    run.close()
    assert "publish" in info.value.rolled_back
    assert ("POST", "/github/user/repos") in [(m, p) for m, p, _ in github.calls]
    assert ("DELETE", "/github/repos/jane/tmp") in [(m, p) for m, p, _ in github.calls]
    assert not (github.git_root / "jane/tmp.git").exists()


def test_a_wrong_token_is_one_line_without_the_token(
        tmp_path: Path, github: ProviderStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVFORGE_GITHUB_TOKEN", "wrong-secret-token")
    directory = _template(tmp_path, """\
        - id: publish
          action: publish:github
          input: {repoUrl: 'github.com?owner=acme&repo=x'}
        """)
    run = TemplateRun(load_template(directory), {}, registry=default_registry())
    with pytest.raises(StepFailedError) as info:
        run.run()
    run.close()
    assert "answered 401" in str(info.value) and "wrong-secret-token" not in str(info.value)


def test_github_pull_request(tmp_path: Path, github: ProviderStandIn) -> None:
    bare = github.make_repo("acme", "catalog", "main", {"existing.txt": "kept\n"})
    directory = _template(tmp_path, """\
        - id: pr
          action: publish:github:pull-request
          input:
            repoUrl: github.com?owner=acme&repo=catalog
            branchName: add-shop
            title: Add shop
            targetPath: services/shop
        """)
    run = TemplateRun(load_template(directory), {}, registry=default_registry())
    run.run()
    run.close()
    out = run.outputs["pr"]
    assert out["remoteUrl"] == "https://github.test/acme/catalog/pull/7"
    assert out["pullRequestNumber"] == 7 and out["targetBranchName"] == "main"
    assert _files(bare, "add-shop") == {"existing.txt": "kept\n",
                                        "services/shop/README.md": "# shop\n"}
    pulls = [b for m, p, b in github.calls if p.endswith("/pulls")]
    assert pulls == [{"title": "Add shop", "body": "", "head": "add-shop", "base": "main",
                      "draft": False}]


def test_gitlab_project_and_merge_request(tmp_path: Path, gitlab: ProviderStandIn) -> None:
    directory = _template(tmp_path, """\
        - id: publish
          action: publish:gitlab
          input: {repoUrl: 'gitlab.com?owner=acme&repo=shop', defaultBranch: main}
        """)
    run = TemplateRun(load_template(directory), {}, registry=default_registry())
    run.run()
    run.close()
    assert run.outputs["publish"]["remoteUrl"] == "https://gitlab.test/acme/shop"
    assert run.outputs["publish"]["projectId"] == 42
    assert _files(gitlab.git_root / "acme/shop.git", "main") == {"README.md": "# shop\n"}

    bare = gitlab.make_repo("acme", "catalog", "main", {"a.txt": "a\n"})
    mr_dir = _template(tmp_path / "mr", """\
        - id: mr
          action: publish:gitlab:merge-request
          input:
            repoUrl: gitlab.com?owner=acme&repo=catalog
            branchName: add-shop
            title: Add shop
            description: from envforge
        """)
    mr = TemplateRun(load_template(mr_dir), {}, registry=default_registry())
    mr.run()
    mr.close()
    assert mr.outputs["mr"]["mergeRequestUrl"] == "https://gitlab.test/acme/catalog/-/merge_requests/3"
    assert _files(bare, "add-shop") == {"a.txt": "a\n", "README.md": "# shop\n"}
