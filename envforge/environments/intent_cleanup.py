"""Removing what a killed create made outside Git, one kind at a time: its databases, the
environment's Secrets on one cluster, an image tag it pushed, a repository it created on a
Git provider. envforge.environments.intents decides what to remove (from the intent and the
run's ledger) and reports; each function here removes exactly what it is named, with the same
rules as the step's own rollback, and raises an EnvforgeError saying why it could not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from envforge.errors import ConfigurationError, EnvforgeError
from envforge.services import Services

#: Owner-comment roles of shared databases a clean-up never drops (envforge.db.branch).
_SHARED_ROLES = frozenset({"golden", "staging", "previous"})


@dataclass
class MadeRemoved:
    """What removing a killed run's ledger entries did: image tags and provider repositories
    deleted, things recorded only as intended (reported, never deleted), problems."""

    images: list[str] = field(default_factory=list)
    repositories: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def remove_made(services: Services, made: list[dict[str, Any]],
                intended: list[dict[str, Any]], what: str) -> MadeRemoved:
    """Delete the images and provider repositories ``made`` (ledger lines) names, each by the
    identity the other side answered; list ``intended`` ones as unconfirmed. Each failure is
    reported and the others still run."""
    done = MadeRemoved()
    for entry in made:
        kind = entry.get("kind")
        try:
            if kind == "image" and (tag := remove_image(services, entry)):
                done.images.append(tag)
            elif kind == "provider-repository" and (
                    repo := remove_repository(services, entry, what)):
                done.repositories.append(repo)
        except EnvforgeError as e:
            done.problems.append(f"{kind} {entry.get('tag') or entry.get('name')}: {e}")
    for entry in intended:
        if entry.get("kind") == "image":
            done.unconfirmed.append(f"image {entry.get('tag')}")
        elif entry.get("kind") == "provider-repository":
            done.unconfirmed.append(f"{entry.get('provider')} repository "
                                    f"{entry.get('requested')}")
    return done


def remove_secrets(services: Services, cluster: str | None, namespace: str,
                   environment: str) -> list[str]:
    """Delete the Secrets labelled with ``environment`` in ``namespace`` on ``cluster`` (a
    KubernetesCluster block; None: KUBECONFIG). Nothing when no default cluster is configured
    (the run could not have delivered any); a named block that cannot be loaded is an error."""
    from envforge.secrets.actions import load_deliverer

    try:
        deliverer = load_deliverer(cluster, services.connections)
    except ConfigurationError:
        if cluster is None:
            return []
        raise
    return deliverer.remove_environment(namespace, environment)


def remove_image(services: Services, entry: dict[str, Any]) -> str | None:
    """Delete the image tag a ledger ``made`` line names, if it still points at the recorded
    digest and no other tag shares it; the tag when deleted, else None."""
    from envforge.images.actions import delete_pushed_image
    from envforge.images.build import resolve_registry

    tag, digest = str(entry.get("tag") or ""), str(entry.get("digest") or "")
    if "/" not in tag or not digest:
        return None
    block, address = entry.get("registryBlock"), entry.get("registry")
    registry = resolve_registry(block if isinstance(block, str) else None,
                                address if isinstance(address, str) else None,
                                bool(entry.get("tlsVerify", True)), services=services)
    return tag if delete_pushed_image(registry, tag, digest).startswith("deleted") else None


def remove_repository(services: Services, entry: dict[str, Any], what: str) -> str | None:
    """Delete the provider repository a ledger ``made`` line names, by the provider's id,
    with the operator's token for the configured provider; ``provider:name`` when deleted."""
    from envforge.actions.publish_repository import CreatedRepository, delete_repository
    from envforge.capabilities.providers import provider_client

    created = CreatedRepository.from_entry(entry)
    endpoint = services.capabilities.provider(created.provider)
    try:
        with provider_client(endpoint, services.capabilities.egress, None, what,
                             refused=EnvforgeError) as client:
            return f"{created.provider}:{created.name}" \
                if delete_repository(client, created) else None
    except ValueError as e:
        raise EnvforgeError(f"{what}: {e}") from None


def drop_databases_of_run(services: Services, block: str | None, environment: str,
                          run_id: str) -> list[str]:
    """Databases on ``block``'s server whose envforge owner comment names this environment
    and the killed run (shared goldens and branches' bases are never touched)."""
    import psycopg

    from envforge.db.actions import load_server
    from envforge.db.connection import connected
    from envforge.db.safety import OWNER_MARK, drop_owned_database
    from envforge.errors import DatabaseError

    try:
        server = load_server(block, services.connections).address()
    except ConfigurationError:
        return []  # no database server configured: the run made no database
    try:
        with connected(server.with_database("postgres"), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE shobj_description(oid, 'pg_database') LIKE %s",
                (OWNER_MARK + "%",)).fetchall()
    except psycopg.Error as e:
        raise DatabaseError(f"cannot list databases on {server.label}: "
                            f"{str(e).strip().splitlines()[0] if str(e).strip() else e}") from e
    dropped = []
    for name, comment in rows:
        mark = owner_marker(str(comment))
        mine = (mark.get("run_id") == run_id and mark.get("environment") == environment
                and mark.get("role") not in _SHARED_ROLES)
        if mine and drop_owned_database(server, str(name), run_id=run_id):
            dropped.append(str(name))
    return dropped


def owner_marker(comment: str) -> dict[str, Any]:
    """The JSON envforge wrote after its mark in a database's owner comment ({} if none)."""
    from envforge.db.safety import OWNER_MARK

    try:
        value = json.loads(comment[len(OWNER_MARK):] or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


