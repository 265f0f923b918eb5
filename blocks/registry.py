"""Blocks for image builds: the container registry images go to, and Git credentials.

``ContainerRegistry`` holds a registry's address, login and TLS settings. ``GitCredentials``
holds an HTTPS token or an SSH key for cloning a repository; it is deliberately generic so the
GitOps repository can reuse it. Secret fields are ``SecretStr`` and never leave through a log
or an error message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from envforge.images.git_auth import GitAuth, git_environment
from envforge.images.registry_client import RegistryAccess, RegistryClient


class ContainerRegistry(Block):
    """A container registry envforge pushes application images to."""

    _block_type_name = "envforge Container Registry"
    _description = "Address, credentials and TLS settings of an image registry."

    address: str = Field(
        description="host[:port][/namespace] of the registry, e.g. 'registry.example.com/team'"
        " or '127.0.0.1:5000'. An 'http://' prefix forces plain HTTP."
    )
    username: str | None = Field(default=None, description="User name; empty for anonymous.")
    password: SecretStr | None = Field(default=None, description="Password or access token.")
    tls_verify: bool = Field(
        default=True,
        description="Verify the registry's TLS certificate. Off also allows plain HTTP.",
    )
    ca_cert: str | None = Field(
        default=None, description="PEM text of an extra certificate authority to trust."
    )

    def access(self) -> RegistryAccess:
        """The plain settings envforge.images works with (no Prefect types)."""
        return RegistryAccess(address=self.address, username=self.username,
                              password=self.password, tls_verify=self.tls_verify,
                              ca_cert=self.ca_cert)

    @contextmanager
    def get_client(self) -> Iterator[RegistryClient]:
        """A registry API client, closed on exit."""
        client = RegistryClient(self.access())
        try:
            yield client
        finally:
            client.close()


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

    def auth(self) -> GitAuth:
        return GitAuth(username=self.username, token=self.token,
                       ssh_private_key=self.ssh_private_key,
                       ssh_known_hosts=self.ssh_known_hosts)

    @contextmanager
    def get_client(self) -> Iterator[dict[str, str]]:
        """Environment variables that make git use these credentials (temp files removed
        on exit); pass them as ``env`` to git or GitPython."""
        with git_environment(self.auth()) as env:
            yield env


BLOCK_TYPES: list[type[Any]] = [ContainerRegistry, GitCredentials]
