"""Giving git credentials without putting them in a URL, an argument list or a log.

An HTTPS token is answered by a GIT_ASKPASS helper that reads it from a file in a private
temporary directory; an SSH key is written there with mode 0600 and named in GIT_SSH_COMMAND.
The returned environment holds only paths, so logging it leaks nothing. The directory is
removed when the context ends.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

ASKPASS = """#!/bin/sh
# envforge: answers git's username/password prompts from files beside this script
here=$(dirname "$0")
case "$1" in
    Username*|username*) cat "$here/username" ;;
    *) cat "$here/token" ;;
esac
"""


@dataclass(frozen=True)
class GitAuth:
    """Credentials for a Git remote: an HTTPS token, an SSH key, or neither."""

    username: str = "git"
    token: SecretStr | None = None
    ssh_private_key: SecretStr | None = None
    ssh_known_hosts: str | None = None


def _private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")
    return path


@contextmanager
def git_environment(auth: GitAuth | None) -> Iterator[dict[str, str]]:
    """Environment variables for git subprocesses: never prompt; use ``auth`` if given."""
    env = {"GIT_TERMINAL_PROMPT": "0",
           "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new"}
    if auth is None or (auth.token is None and auth.ssh_private_key is None):
        yield env
        return
    directory = Path(tempfile.mkdtemp(prefix="envforge-git-"))
    try:
        if auth.token is not None:
            _private_file(directory / "username", auth.username)
            _private_file(directory / "token", auth.token.get_secret_value())
            env["GIT_ASKPASS"] = str(_private_file(directory / "askpass.sh", ASKPASS, 0o700))
        if auth.ssh_private_key is not None:
            key = _private_file(directory / "id_key", auth.ssh_private_key.get_secret_value())
            options = ["-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
            if auth.ssh_known_hosts:
                known = _private_file(directory / "known_hosts", auth.ssh_known_hosts)
                options += ["-o", f"UserKnownHostsFile={known}",
                            "-o", "StrictHostKeyChecking=yes"]
            else:
                options += ["-o", "StrictHostKeyChecking=accept-new"]
            env["GIT_SSH_COMMAND"] = shlex.join(["ssh", *options])
        yield env
    finally:
        shutil.rmtree(directory, ignore_errors=True)
