"""Credentials over HTTPS-style smart HTTP: the token comes from GitCredentials (askpass),
never from the URL; a wrong token is a permanent refusal with the working copy left clean,
and no message carries the token."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from envforge.errors import PushRejectedError
from envforge.gitops.repository import open_store
from envforge.gitops.settings import GitOpsSettings
from envforge.images.git_auth import GitAuth
from tests.git_http import GitHttpServer
from tests.helpers import commit_count, git
from tests.unit.gitops.helpers import spec

TOKEN = "tok-right-0123456789"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitHttpServer]:
    root = tmp_path / "served"
    root.mkdir()
    git("init", "--quiet", "--bare", "--initial-branch=main", str(root / "gitops.git"))
    git("--git-dir", str(root / "gitops.git"), "config", "http.receivepack", "true")
    with GitHttpServer(root, "envforge-bot", TOKEN, protect="push") as running:
        yield running


def _auth(token: str) -> GitAuth:
    return GitAuth(username="envforge-bot", token=SecretStr(token))


def test_the_blocks_token_pushes(server: GitHttpServer, tmp_path: Path,
                                 manifests: Path) -> None:
    with open_store(url=server.url("gitops.git"), cache_root=tmp_path / "c",
                    settings=GitOpsSettings(), auth=_auth(TOKEN)) as store:
        result = store.create(store.new_record("pr-1", spec(), "1d"), manifests)
    assert result.commit
    assert commit_count(server.project_root / "gitops.git") == 1
    assert all(TOKEN not in url for url in server.seen_urls)


def test_a_wrong_token_is_refused_for_good_and_leaves_the_copy_clean(
        server: GitHttpServer, tmp_path: Path, manifests: Path) -> None:
    with open_store(url=server.url("gitops.git"), cache_root=tmp_path / "c",
                    settings=GitOpsSettings(), auth=_auth("tok-wrong-9876543210")) as store:
        with pytest.raises(PushRejectedError) as info:
            store.create(store.new_record("pr-1", spec(), "1d"), manifests)
        workdir = store.publisher.workdir
    message = str(info.value)
    assert "refused the push" in message and "Authentication failed" in message
    assert "tok-wrong" not in message
    assert commit_count(server.project_root / "gitops.git") == 0
    assert git("status", "--porcelain", "--ignored", cwd=workdir) == ""
    assert not (workdir / "environments").exists()
