"""Git credentials reach git through files and helpers, never through values in the env."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from pydantic import SecretStr

from envforge.images.git_auth import GitAuth, git_environment


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
