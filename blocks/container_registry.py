"""ContainerRegistry: the image registry application images are pushed to.

Holds a registry's address, login and TLS settings; ``get_client()`` opens envforge's registry
API client. The password is a ``SecretStr`` and never leaves through a log or an error message.
(Not the action registry of ``envforge.actions.registry``: this is an *image* registry.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

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
    auth_url: str | None = Field(
        default=None, description="Base URL of the registry's token service when it is not "
        "the registry itself (Docker Hub: https://auth.docker.io); the password goes nowhere "
        "else the registry names."
    )

    def access(self) -> RegistryAccess:
        """The plain settings envforge.images works with (no Prefect types)."""
        return RegistryAccess(address=self.address, username=self.username,
                              password=self.password, tls_verify=self.tls_verify,
                              ca_cert=self.ca_cert, auth_url=self.auth_url)

    @contextmanager
    def get_client(self) -> Iterator[RegistryClient]:
        """A registry API client, closed on exit."""
        client = RegistryClient(self.access())
        try:
            yield client
        finally:
            client.close()


BLOCK_TYPES: list[type[Any]] = [ContainerRegistry]
