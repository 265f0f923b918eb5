"""Opening the GitOps repository: credentials reach git through the environment (askpass
files), never through the URL; Argo CD gets the URL without credentials."""

from pathlib import Path

from pydantic import SecretStr

from envforge.gitops.repository import open_store
from envforge.images.git_auth import GitAuth


def test_a_token_goes_to_git_through_askpass_not_the_url(tmp_path: Path) -> None:
    auth = GitAuth(username="x-access-token", token=SecretStr("tok-123456789"))
    url = "https://git.example.com/platform/gitops.git"
    with open_store(url=url, cache_root=tmp_path, auth=auth) as store:
        env = store.publisher.git_env
        askpass = Path(env["GIT_ASKPASS"])
        assert askpass.is_file() and env["GIT_TERMINAL_PROMPT"] == "0"
        assert (askpass.parent / "token").read_text().strip() == "tok-123456789"
        assert all("tok-123456789" not in value for value in env.values())
        assert "tok-123456789" not in store.publisher.url
    assert not askpass.exists()  # credential files live only while the store is open


def test_argocd_sees_the_repository_without_credentials(tmp_path: Path) -> None:
    with open_store(url="https://bot:s3cr3t@git.example.com/gitops.git",
                    cache_root=tmp_path) as store:
        assert store.repo_url == "https://git.example.com/gitops.git"
        assert "s3cr3t" not in store.publisher.safe_url
