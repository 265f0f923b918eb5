"""Tokens of the Vault stand-in: lifetime, renewal capped at the max TTL, and their JSON shapes.

As Vault's token store does: a token lives ``ttl`` seconds from issue or last renewal; renewal
(``increment``, or the token's original TTL without one) may not take it past ``issue time +
max TTL`` (its ``explicit_max_ttl`` if set, else the system's ``max_lease_ttl``), and when it
is capped the response carries Vault's warning; a token past its max TTL cannot be renewed.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.standins.vault_policy import format_duration

#: Vault's defaults for the system (and token mount) max lease TTL: 32 days.
SYSTEM_MAX_TTL = 768 * 3600


class RenewalRefused(Exception):
    """Vault answers 400 with this message."""


@dataclass
class Token:
    id: str
    policies: list[str]
    ttl: int  # the TTL the token was created with (Vault's creation_ttl); 0: never expires
    renewable: bool
    display_name: str
    explicit_max_ttl: int = 0
    system_max_ttl: int = SYSTEM_MAX_TTL
    created: float = field(default_factory=time.time)
    expires: float = 0.0
    accessor: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.ttl:
            self.ttl = min(self.ttl, self.max_ttl())
        self.expires = self.created + self.ttl if self.ttl else 0.0

    def max_ttl(self) -> int:
        if self.explicit_max_ttl and self.explicit_max_ttl < self.system_max_ttl:
            return self.explicit_max_ttl
        return self.system_max_ttl

    def remaining(self) -> int:
        return max(0, int(self.expires - time.time())) if self.ttl else 0

    def expired(self) -> bool:
        return bool(self.ttl) and time.time() >= self.expires

    def renew(self, increment: int) -> tuple[int, list[str]]:
        """Extend the lease; returns the granted TTL and Vault's warnings (capping)."""
        if not self.renewable:
            raise RenewalRefused("lease is not renewable")
        if not self.ttl:
            return 0, []
        wanted = increment or self.ttl
        left = int(self.created + self.max_ttl() - time.time())
        if left <= 0:
            raise RenewalRefused("past the max TTL, cannot renew")
        warnings: list[str] = []
        granted = wanted
        if wanted > left:
            warnings.append(f'TTL of "{format_duration(wanted)}" exceeded the effective max_ttl '
                            f'of "{format_duration(left)}"; TTL value is capped accordingly')
            granted = left
        self.expires = time.time() + granted
        return granted, warnings


def auth_block(token: Token, lease_duration: int | None = None) -> dict[str, Any]:
    """The ``auth`` object of a login, token creation or renewal response."""
    return {"client_token": token.id, "accessor": token.accessor, "policies": token.policies,
            "token_policies": token.policies, "metadata": {"role": token.display_name},
            "lease_duration": token.ttl if lease_duration is None else lease_duration,
            "renewable": token.renewable, "entity_id": "", "token_type": "service",
            "orphan": True, "mfa_requirement": None, "num_uses": 0}


def lookup_data(token: Token) -> dict[str, Any]:
    """The ``data`` of ``auth/token/lookup-self``."""
    return {"accessor": token.accessor, "creation_time": int(token.created),
            "creation_ttl": token.ttl, "display_name": token.display_name, "entity_id": "",
            "expire_time": None if not token.ttl else datetime.fromtimestamp(
                token.expires, UTC).isoformat(),
            "explicit_max_ttl": token.explicit_max_ttl, "id": token.id,
            "issue_time": datetime.fromtimestamp(token.created, UTC).isoformat(),
            "meta": None, "num_uses": 0, "orphan": True, "path": "auth/token/create",
            "policies": token.policies, "renewable": token.renewable,
            "ttl": token.remaining(), "type": "service"}
