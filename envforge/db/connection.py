"""Where a PostgreSQL server is and how to open connections to it without leaking passwords.

Every psycopg error is wrapped here (or in the module that runs the statement) so that the rest
of envforge only sees :class:`~envforge.errors.DatabaseError` subclasses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import SecretStr

from envforge.errors import DatabaseUnreachableError

if TYPE_CHECKING:  # envforge.settings loads pydantic-settings: only when a default is needed
    from envforge.settings import LibpqSection

CONNECT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class ServerAddress:
    """One server and database; the password never appears in ``repr`` or in a conninfo."""

    host: str
    port: int = 5432
    user: str = "postgres"
    dbname: str = "postgres"
    password: SecretStr | None = None
    sslmode: str = "prefer"

    @classmethod
    def from_dsn(cls, dsn: str, defaults: LibpqSection | None = None) -> ServerAddress:
        """Parse a libpq DSN or URL; a password in it is kept as a SecretStr. A part it leaves
        out comes from ``defaults`` (libpq's PG* variables as the settings read them; default:
        the process's settings), then libpq's own default."""
        try:
            parts = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as e:
            raise DatabaseUnreachableError(f"cannot parse the connection string: {e}") from None
        if defaults is None:
            from envforge.settings import load_settings

            defaults = load_settings().libpq
        pg = defaults
        password = parts.get("password")
        return cls(
            host=str(parts.get("host") or pg.host or "localhost"),
            port=int(parts.get("port") or pg.port or 5432),
            user=str(parts.get("user") or pg.user or "postgres"),
            dbname=str(parts.get("dbname") or pg.database or "postgres"),
            password=SecretStr(str(password)) if password else pg.password,
            sslmode=str(parts.get("sslmode") or "prefer"),
        )

    def with_database(self, dbname: str) -> ServerAddress:
        return replace(self, dbname=dbname)

    @property
    def label(self) -> str:
        """How errors and logs name this database: user@host:port/dbname (no password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"

    def conninfo(self, *, with_password: bool = False, **extra: Any) -> str:
        """A libpq conninfo; the password only when asked (psycopg connections, never logs)."""
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
            "sslmode": self.sslmode,
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": "envforge",
        }
        if with_password and self.password is not None:
            params["password"] = self.password.get_secret_value()
        params.update(extra)
        return make_conninfo("", **params)

    def subprocess_env(self) -> dict[str, str]:
        """Environment for pg_dump/pg_restore: the password travels in PGPASSWORD, not argv."""
        env = dict(os.environ)
        env.pop("PGPASSWORD", None)
        if self.password is not None:
            env["PGPASSWORD"] = self.password.get_secret_value()
        env["PGCONNECT_TIMEOUT"] = str(CONNECT_TIMEOUT_SECONDS)
        return env


def open_connection(
    address: ServerAddress, *, autocommit: bool = False, options: Mapping[str, str] | None = None
) -> psycopg.Connection[Any]:
    """Connect, turning any failure into DatabaseUnreachableError that names the server."""
    extra: dict[str, Any] = {}
    if options:
        extra["options"] = " ".join(f"-c {k}={v}" for k, v in options.items())
    try:
        return psycopg.connect(
            address.conninfo(with_password=True, **extra), autocommit=autocommit
        )
    except psycopg.Error as e:
        raise DatabaseUnreachableError(
            f"cannot connect to {address.label}: {_first_line(e)} "
            "(check host, port, user and password in the database server block)"
        ) from e


@contextmanager
def connected(
    address: ServerAddress, *, autocommit: bool = False
) -> Iterator[psycopg.Connection[Any]]:
    """``with connected(addr) as conn:`` closes the connection whatever happens."""
    conn = open_connection(address, autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def read_only_snapshot(
    address: ServerAddress, snapshot_id: str | None = None
) -> Iterator[psycopg.Connection[Any]]:
    """A read-only repeatable-read transaction, optionally on an exported snapshot.

    The source is only ever read: every source connection goes through here.
    """
    conn = open_connection(address, autocommit=True)
    try:
        conn.execute("SET client_encoding = 'UTF8'")
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        if snapshot_id is not None:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_id)))
        yield conn
    finally:
        try:
            if not conn.closed:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the connection is gone; closing is all that is left to do
        finally:
            conn.close()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
