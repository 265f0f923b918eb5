"""DatabaseServer and AnonymisationKey: where databases live and the key that anonymises them.

Follows the prefect-kubernetes block shape: described fields, ``SecretStr`` for the password
and the key, ``get_client()`` as a context manager. Without a saved block,
``from_environment()`` reads libpq's PGHOST/PGPORT/PGUSER/PGPASSWORD/PGSSLMODE, and
ENVFORGE_ANONYMISATION_KEY (or a ``vault:`` reference in ENVFORGE_ANONYMISATION_KEY_REF).
The key never lives in a rules file, a template or flow parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.loading import settings_of
from envforge.db.connection import ServerAddress, open_connection
from envforge.errors import ConfigurationError
from envforge.settings import EnvforgeSettings

MIN_KEY_BYTES = 16


class DatabaseServer(Block):
    """A PostgreSQL server envforge reads from (clone source) or creates databases on."""

    _block_type_name = "envforge Database Server"
    _block_type_slug = "envforge-database-server"
    _description = "PostgreSQL host, port, user and password; the maintenance database."

    host: str = Field(description="Host name or IP address of the server.")
    port: int = Field(default=5432, description="TCP port.")
    user: str = Field(default="postgres", description="Role to log in as.")
    password: SecretStr | None = Field(default=None, description="Password of that role.")
    sslmode: str = Field(default="prefer", description="libpq sslmode (disable ... verify-full).")
    maintenance_database: str = Field(
        default="postgres", description="Database used to create and drop others.")

    @classmethod
    def from_settings(cls, settings: EnvforgeSettings) -> DatabaseServer:
        """The server of libpq's PG* variables, as the settings read them."""
        pg = settings.libpq
        if not pg.host:
            raise ConfigurationError(
                "no database server configured: name a DatabaseServer block or set PGHOST "
                "(and PGPORT, PGUSER, PGPASSWORD)")
        return cls(host=pg.host, port=pg.port or 5432, user=pg.user or "postgres",
                   password=pg.password, sslmode=pg.sslmode or "prefer")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> DatabaseServer:
        """:meth:`from_settings` of ``environ`` (default: the process's settings)."""
        return cls.from_settings(settings_of(environ))

    def address(self, database: str | None = None) -> ServerAddress:
        """The server with ``database`` (default: the maintenance database)."""
        return ServerAddress(host=self.host, port=self.port, user=self.user,
                             dbname=database or self.maintenance_database,
                             password=self.password, sslmode=self.sslmode)

    @contextmanager
    def get_client(self, database: str | None = None) -> Iterator[Any]:
        """A psycopg connection to ``database``, closed on exit."""
        conn = open_connection(self.address(database))
        try:
            yield conn
        finally:
            conn.close()


class AnonymisationKey(Block):
    """The secret key of the deterministic anonymisation (HMAC-SHA256).

    Same key, same fakes (joins and repeated clones match); rotate it to unlink environments.
    Either the key itself, or a ``vault:<path>#<key>`` reference read through a VaultConnection.
    """

    _block_type_name = "envforge Anonymisation Key"
    _block_type_slug = "envforge-anonymisation-key"
    _description = "Secret key for deterministic anonymisation (or a Vault reference to it)."

    key: SecretStr | None = Field(default=None, description="The key (at least 16 bytes).")
    vault_reference: str | None = Field(
        default=None, description="vault:<path>#<field> to read the key from Vault instead.")
    vault_block: str | None = Field(
        default=None, description="VaultConnection block for the reference; default VAULT_*.")

    @classmethod
    def from_settings(cls, settings: EnvforgeSettings) -> AnonymisationKey:
        """The key of ENVFORGE_ANONYMISATION_KEY, else the Vault reference of
        ENVFORGE_ANONYMISATION_KEY_REF, as the settings read them."""
        if settings.db.anonymisation_key is not None:
            return cls(key=settings.db.anonymisation_key)
        if settings.db.anonymisation_key_ref:
            return cls(vault_reference=settings.db.anonymisation_key_ref)
        raise ConfigurationError(
            "no anonymisation key: name an AnonymisationKey block (keyBlock) or set "
            "ENVFORGE_ANONYMISATION_KEY (or ENVFORGE_ANONYMISATION_KEY_REF=vault:path#field)")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> AnonymisationKey:
        """:meth:`from_settings` of ``environ`` (default: the process's settings)."""
        return cls.from_settings(settings_of(environ))

    def get_key(self) -> bytes:
        """The key bytes; ConfigurationError (without the value) when missing or too short."""
        if self.key is not None:
            value = self.key.get_secret_value()
        elif self.vault_reference:
            value = _read_from_vault(self.vault_reference, self.vault_block)
        else:
            raise ConfigurationError("AnonymisationKey block has neither a key nor a "
                                     "vault_reference; set one of them")
        raw = value.encode("utf-8")
        if len(raw) < MIN_KEY_BYTES:
            raise ConfigurationError(f"the anonymisation key is shorter than {MIN_KEY_BYTES} "
                                     "bytes; use a long random value (e.g. openssl rand -hex 32)")
        return raw


def _read_from_vault(reference: str, vault_block: str | None) -> str:
    from blocks.loading import load_block
    from blocks.vault import VaultConnection
    from envforge.secrets.references import parse_reference

    reader = load_block(VaultConnection, vault_block).get_reader()
    return str(reader.read(parse_reference(reference, "anonymisation key")))


BLOCK_TYPES = [DatabaseServer, AnonymisationKey]
