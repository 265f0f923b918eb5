"""Giving git credentials without putting them in a URL, an argument list or a log.

An HTTPS token is answered by a GIT_ASKPASS helper that reads it from a file in a private
temporary directory; an SSH key is written there with mode 0600 and named in GIT_SSH_COMMAND.
The returned environment holds only paths, so logging it leaks nothing. The directory is
removed when the context ends.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from envforge.core.git_boundary import redact_url
from envforge.errors import ConfigurationError

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
    """Credentials for a Git remote: an HTTPS token, an SSH key, or neither. ``hosts``: the
    Git hosts (``host`` or ``host:port``, ``*`` globs) they may be sent to when a template
    names them (:func:`check_credentials_host`); ``identity``: which credentials these are
    (the block's name), so caches fetched with them are kept apart from others'."""

    username: str = "git"
    token: SecretStr | None = None
    ssh_private_key: SecretStr | None = None
    ssh_known_hosts: str | None = None
    hosts: tuple[str, ...] = ()
    identity: str = ""


_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^/:]+):(?!//)")


def url_host(url: str) -> str | None:
    """``host`` or ``host:port`` of a Git URL (https://, ssh://, git://, scp-like
    ``user@host:path``), lower case; None for a local path or file:// URL."""
    if "://" in url:
        parsed = urlsplit(url)
        if parsed.scheme.lower() == "file" or not parsed.hostname:
            return None
        return parsed.hostname.lower() + (f":{parsed.port}" if parsed.port else "")
    match = _SCP_LIKE.match(url)
    return match["host"].lower() if match else None


def check_credentials_host(auth: GitAuth, url: str, where: str) -> None:
    """Refuse to send ``auth`` to ``url``'s host unless its block lists that host (a template
    chooses the URL, so a block is only ever for the hosts the operator named in it), or
    over plain http to anything but this machine."""
    host = url_host(url)
    block = f"GitCredentials block {auth.identity!r}" if auth.identity else "the credentials"
    if host is None:
        raise ConfigurationError(
            f"{where}: {block} cannot be used for {redact_url(url)} (a local repository needs "
            "no credentials); drop gitCredentialsBlock")
    if not auth.hosts:
        raise ConfigurationError(
            f"{where}: {block} lists no hosts, so a template may not send it anywhere; set "
            f"its 'hosts' field to the Git hosts it is for (e.g. {host})")
    if not any(fnmatch.fnmatchcase(host, pattern.lower()) for pattern in auth.hosts):
        raise ConfigurationError(
            f"{where}: {block} is for {', '.join(auth.hosts)}, not {host}: a repository's "
            "credentials go only to the hosts its block names; use a block for that host")
    parsed = urlsplit(url) if "://" in url else None
    if parsed is not None and parsed.scheme.lower() == "http" \
            and parsed.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ConfigurationError(
            f"{where}: {block} would go over plain http to {host}; use https")


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
