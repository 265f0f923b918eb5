"""Which parameters are credentials: by name (normalised across case, '_', '-' and camelCase)
and by schema hint (``ui:field: Secret``, ``ui:widget: password``, ``format: password``,
``writeOnly: true``). Such values never reach Git, logs or flow parameters; this module only
says which they are, the callers leave them out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: Words that make a name a credential wherever they appear in it (normalised name).
CREDENTIAL_WORDS = ("password", "passwd", "passphrase", "passcode", "secret", "token",
                    "apikey", "credential", "privatekey", "accesskey", "secretkey",
                    "clientsecret", "signingkey", "encryptionkey", "sessionkey", "bearer",
                    "authkey", "masterkey", "dbpass", "sshkey", "certkey")
#: Short words that mark a credential only as a whole word of the name (``db_pwd``,
#: ``dbPass``), so ``compass`` or ``passenger`` stay what they are.
CREDENTIAL_TOKENS = frozenset({"pass", "pwd", "pw", "pat", "psk", "otp"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


def name_tokens(name: str) -> list[str]:
    """``dbPass`` -> [db, pass]; ``DB_PWD`` -> [db, pwd]; ``api-Key`` -> [api, key]."""
    words = _SEPARATORS.split(_CAMEL.sub("_", name))
    return [w.lower() for w in words if w]


def is_credential_name(name: str) -> bool:
    """Whether a parameter called ``name`` holds a credential, going by its name alone."""
    tokens = name_tokens(name)
    joined = "".join(tokens)
    return any(word in joined for word in CREDENTIAL_WORDS) or any(
        t in CREDENTIAL_TOKENS for t in tokens)


def is_credential_schema(schema: Mapping[str, Any]) -> bool:
    """Whether a JSON Schema property is marked as a credential by its UI or format hints."""
    return (str(schema.get("ui:field", "")).lower() == "secret"
            or str(schema.get("ui:widget", "")).lower() == "password"
            or str(schema.get("format", "")).lower() == "password"
            or schema.get("writeOnly") is True)


def credential_paths(pages: Iterable[Mapping[str, Any]]) -> set[str]:
    """Dotted paths of the properties the parameter pages mark as credentials."""
    found: set[str] = set()

    def walk(schema: Mapping[str, Any], prefix: str) -> None:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return
        for key, sub in properties.items():
            if not isinstance(sub, Mapping):
                continue
            path = f"{prefix}{key}"
            if is_credential_schema(sub):
                found.add(path)
            walk(sub, f"{path}.")

    for page in pages:
        if isinstance(page, Mapping):
            walk(page, "")
    return found


def without_credentials(parameters: Mapping[str, Any], marked: set[str] | None = None,
                        prefix: str = "") -> tuple[dict[str, Any], list[str]]:
    """``parameters`` without credentials (by name, or listed in ``marked`` as dotted paths),
    and the dotted paths left out (names only, never values)."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in parameters.items():
        path = f"{prefix}{key}"
        if is_credential_name(str(key)) or path in (marked or set()):
            dropped.append(path)
        elif isinstance(value, Mapping):
            inner, inner_dropped = without_credentials(value, marked, f"{path}.")
            kept[key] = inner
            dropped.extend(inner_dropped)
        else:
            kept[key] = value
    return kept, dropped
