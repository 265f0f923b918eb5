"""GitCredentials: an HTTPS token or an SSH key for cloning or pushing a Git repository.

Generic on purpose: image builds clone application repositories with it, and the GitOps
repository (``ENVFORGE_GITOPS_BLOCK``) is pushed with it. Secret fields are ``SecretStr``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from envforge.images.git_auth import GitAuth, git_environment


class GitCredentials(Block):
    """Credentials for cloning or pushing a Git repository over HTTPS or SSH."""

    _block_type_name = "envforge Git Credentials"
    _description = "An HTTPS token or an SSH private key for Git repositories."

    username: str = Field(
        default="git",
        description="HTTPS user name (e.g. 'x-access-token' for GitHub apps, 'oauth2' for "
        "GitLab); ignored for SSH.",
    )
    token: SecretStr | None = Field(default=None, description="HTTPS password or token.")
    ssh_private_key: SecretStr | None = Field(
        default=None, description="Private key (OpenSSH PEM text) for SSH URLs."
    )
    ssh_known_hosts: str | None = Field(
        default=None,
        description="known_hosts lines for the Git server; without them host keys are "
        "accepted on first use.",
    )

    hosts: list[str] = Field(
        default_factory=list,
        description="Git hosts these credentials are for ('github.com', 'git.example.com:8443', "
        "'*.example.com'). A template's image:build uses the block only for a repository on "
        "one of them; a block without hosts serves the GitOps remote and the CLI, never a "
        "template.",
    )

    def auth(self, identity: str = "") -> GitAuth:
        """The plain settings envforge's git helpers work with (no Prefect types);
        ``identity``: the block's name, which keeps caches fetched with it apart."""
        return GitAuth(username=self.username, token=self.token,
                       ssh_private_key=self.ssh_private_key,
                       ssh_known_hosts=self.ssh_known_hosts, hosts=tuple(self.hosts),
                       identity=identity)

    @contextmanager
    def get_client(self) -> Iterator[dict[str, str]]:
        """Environment variables that make git use these credentials (temp files removed
        on exit); pass them as ``env`` to git or GitPython."""
        with git_environment(self.auth()) as env:
            yield env


BLOCK_TYPES: list[type[Any]] = [GitCredentials]
