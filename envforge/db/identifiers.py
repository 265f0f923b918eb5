"""SQL identifiers, quoted by psycopg.sql and nowhere else.

Names of databases, schemas, tables and columns come from sources envforge does not control
(a production schema, an environment name, a --database flag): quotes, dots, spaces, unicode
and 63-byte names all occur. Statements run by envforge compose them with
``psycopg.sql.SQL(...).format(sql.Identifier(...))``; :func:`identifier_text` gives the same
quoting as text where a statement must travel as a string (a COPY command handed to psql, a
name kept in a plain dataclass).
"""

from __future__ import annotations

from psycopg import sql


def identifier(*parts: str) -> sql.Identifier:
    """``schema.table`` or a single name as a composable identifier (each part quoted)."""
    return sql.Identifier(*parts)


def identifier_text(*parts: str) -> str:
    """The quoted identifier as SQL text (``"a""b"."c.d"``), quoted by psycopg."""
    return sql.Identifier(*parts).as_string(None)


def literal_text(value: str) -> str:
    """A string value as an SQL literal, quoted by psycopg (for text-only statements)."""
    return sql.Literal(value).as_string(None)
