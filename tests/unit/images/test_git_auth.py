"""Git credentials reach git through files and helpers, never through values in the env."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from envforge.errors import ConfigurationError
from envforge.images.git_auth import GitAuth, check_credentials_host, git_environment, url_host


def test_no_credentials_still_never_prompts() -> None:
    with git_environment(None) as env:
        assert env["GIT_TERMINAL_PROMPT"] == "0" and "GIT_ASKPASS" not in env


def test_https_token_is_answered_by_askpass_and_then_removed() -> None:
    auth = GitAuth(username="x-access-token", token=SecretStr("ghs_secret123"))
    with git_environment(auth) as env:
        assert all("ghs_secret123" not in value for value in env.values())
        askpass = env["GIT_ASKPASS"]
        def ask(prompt: str) -> str:
            return subprocess.run([askpass, prompt], capture_output=True, text=True,
                                  check=True).stdout.strip()
        assert ask("Username for 'https://git.example.com': ") == "x-access-token"
        assert ask("Password for 'https://x-access-token@git.example.com': ") == "ghs_secret123"
        directory = Path(askpass).parent
        assert os.stat(directory / "token").st_mode & 0o077 == 0
    assert not directory.exists()


def test_ssh_key_and_known_hosts() -> None:
    auth = GitAuth(ssh_private_key=SecretStr("-----BEGIN OPENSSH PRIVATE KEY-----\nk\n"),
                   ssh_known_hosts="git.example.com ssh-ed25519 AAAA")
    with git_environment(auth) as env:
        command = shlex.split(env["GIT_SSH_COMMAND"])
        key = Path(command[command.index("-i") + 1])
        assert key.read_text().startswith("-----BEGIN") and key.stat().st_mode & 0o077 == 0
        assert "StrictHostKeyChecking=yes" in command and "BEGIN" not in env["GIT_SSH_COMMAND"]
    assert not key.exists()


# --- which hosts a template may send a block's credentials to --------------------------


@pytest.mark.parametrize(("url", "host"), [
    ("https://github.com/acme/api.git", "github.com"),
    ("https://Git.Example.com:8443/a/b", "git.example.com:8443"),
    ("ssh://git@git.example.com:2222/a/b.git", "git.example.com:2222"),
    ("git@github.com:acme/api.git", "github.com"),
    ("github.com:acme/api.git", "github.com"),
    ("file:///srv/repos/app.git", None),
    ("/srv/repos/app.git", None),
])
def test_the_host_of_a_git_url(url: str, host: str | None) -> None:
    assert url_host(url) == host


TOKEN = SecretStr("ghp_operatorstoken0123456789")


def test_a_block_goes_only_to_the_hosts_it_names() -> None:
    auth = GitAuth(token=TOKEN, hosts=("github.com", "*.corp.example"), identity="gh")
    check_credentials_host(auth, "https://github.com/acme/api.git", "step 'image'")
    check_credentials_host(auth, "git@git.corp.example:team/app.git", "step 'image'")
    for url in ("https://evil.example/acme/api.git", "https://github.com.evil.example/x",
                "ssh://git@corp.example/x.git"):
        with pytest.raises(ConfigurationError, match=r"GitCredentials block 'gh' is for "
                           r"github\.com, \*\.corp\.example, not") as caught:
            check_credentials_host(auth, url, "step 'image'")
        assert "\n" not in str(caught.value) and "ghp_" not in str(caught.value)


def test_a_block_without_hosts_is_never_a_templates_and_not_over_plain_http() -> None:
    with pytest.raises(ConfigurationError, match="lists no hosts, so a template may not send "
                       r"it anywhere; set its 'hosts' field to the Git hosts it is for \(e\.g\. "
                       r"github\.com\)"):
        check_credentials_host(GitAuth(token=TOKEN, identity="old"), "https://github.com/a/b",
                               "step 'image'")
    plain = GitAuth(token=TOKEN, hosts=("*",), identity="any")
    with pytest.raises(ConfigurationError, match=r"over plain http to git\.example\.com; use https"):
        check_credentials_host(plain, "http://git.example.com/a/b.git", "step 'image'")
    check_credentials_host(plain, "http://127.0.0.1:3000/a/b.git", "step 'image'")
    with pytest.raises(ConfigurationError, match="a local repository needs no credentials"):
        check_credentials_host(plain, "file:///srv/repos/app.git", "step 'image'")
