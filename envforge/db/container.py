"""``database: container``: the pieces of an environment's own PostgreSQL running as a
container in its namespace (the StatefulSet and Service come from the template's manifests).

What envforge itself makes, outside Git:

* a password generated for the environment (``secrets.token_urlsafe``), never logged, never in
  an output;
* the template's seed as one plain SQL script: seeded with the same ``db:seed`` code into a
  scratch database on envforge's own server, dumped (``pg_dump --no-owner``), dropped again;
* both delivered as the Secret ``<name>-database`` (keys ``password`` and ``seed.sql``), which
  the StatefulSet mounts (the image, scripts/services/images.sh postgres, loads
  ``/docker-entrypoint-initdb.d/*.sql`` on its first start) and the app's Deployment reads
  (``PGPASSWORD``); destroy removes it with the namespace.

Before anything is made, the image is looked up in its registry (a manifest HEAD through the
egress capability): a missing image is a one-line error naming it and the command that pushes
it, not a pod in ImagePullBackOff.
"""

from __future__ import annotations

import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from envforge.capabilities.egress import (
    AllowRule,
    EgressPolicy,
    TransferBudget,
    parse_url,
    system_resolver,
)
from envforge.db.connection import ServerAddress
from envforge.db.safety import drop_owned_database, target_database_name
from envforge.db.schema import pg_tool, run_pg_tool
from envforge.db.seed import SeedRequest, seed_database
from envforge.errors import (
    BudgetExceededError,
    DatabaseError,
    EgressFailedError,
    EgressRefusedError,
)

#: A Secret holds at most 1 MiB; the seed must fit beside the password.
MAX_SEED_BYTES = 900 * 1024
#: The registry API answers a HEAD in a few bytes; a slow or huge answer is not a registry.
LOOKUP_BUDGET = TransferBudget(max_bytes=64 * 1024, deadline_seconds=20.0, max_redirects=3)
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
#: [host[:port]/]repository[:tag] (no digest: the template names a tag it pushed)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REPOSITORY = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
#: Docker's rule for a name without a registry host, as the node's container runtime reads it
DEFAULT_REGISTRY = "docker.io"
#: where docker.io's registry API answers
DEFAULT_REGISTRY_API = "registry-1.docker.io"
PUSH_HINT = "bash scripts/services/images.sh push postgres {image}"


@dataclass(frozen=True)
class ImageReference:
    """``[host[:port]/]repository[:tag]`` split into its parts by the container runtime's
    rule: the first part is a registry host only when it has a dot or a port or is
    ``localhost`` (``library/postgres`` and ``postgres`` are Docker Hub's, as on the node)."""

    host: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, image: str) -> ImageReference:
        name, tag = image, "latest"
        if ":" in image.rpartition("/")[2]:  # a colon after the last slash starts the tag
            name, _, tag = image.rpartition(":")
        first, _, rest = name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            host, repository = first, rest
        else:
            host = DEFAULT_REGISTRY
            repository = name if rest else f"library/{name}"
        if not (_HOST.match(host) and _REPOSITORY.match(repository) and _TAG.match(tag)):
            raise DatabaseError(f"database image {image[:200]!r} is not [host[:port]/]repository"
                                "[:tag]; name the PostgreSQL image in a registry, e.g. "
                                "127.0.0.1:5000/base/postgres:15")
        return cls(host, repository, tag)

    @property
    def api_host(self) -> str:
        """The host whose /v2/ API serves this image (Docker Hub's is not docker.io)."""
        return DEFAULT_REGISTRY_API if self.host == DEFAULT_REGISTRY else self.host

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}:{self.tag}"


def generate_password() -> str:
    """A fresh password for one environment's database (URL-safe: no quoting anywhere)."""
    return secrets.token_urlsafe(24)


def check_image(image: ImageReference, tls_verify: bool,
                transport: httpx.BaseTransport | None = None) -> str:
    """The image's manifest looked up in its registry: ``"found"``, or ``"unverified"`` when
    the registry wants a login (the node pulls with its own pull secret). A missing image or
    registry is a :class:`DatabaseError` of one line that says how to push it."""
    schemes = ["https"] if tls_verify else ["http", "https"]
    path = f"/v2/{image.repository}/manifests/{image.tag}"
    hint = PUSH_HINT.format(image=image)
    last = ""
    for scheme in schemes:
        try:
            origin = parse_url(f"{scheme}://{image.api_host}").origin
        except EgressRefusedError as e:
            raise DatabaseError(f"database image {image}: {e}") from None
        policy = EgressPolicy((AllowRule(origin, (), True),), LOOKUP_BUDGET, system_resolver,
                              transport or httpx.HTTPTransport(verify=tls_verify))
        try:
            with policy.client() as client:
                answer = client.request("HEAD", f"{scheme}://{image.api_host}{path}",
                                        headers={"Accept": MANIFEST_TYPES})
        except (EgressFailedError, EgressRefusedError, BudgetExceededError) as e:
            last = str(e)
            continue
        if answer.status == 200:
            return "found"
        if answer.status in (401, 403):
            return "unverified"
        if answer.status == 404:
            raise DatabaseError(f"database image {image} is not in its registry; push it "
                                f"first: {hint}")
        last = f"HTTP {answer.status}"
    raise DatabaseError(f"database image {image}: registry {image.host} did not answer "
                        f"({last}); start it or fix the image name, then: {hint}")


def seed_script(server: ServerAddress, environment: str, schema_sql: Path | None,
                fixtures: list[Path], generate: dict[str, int], seed: int, run_id: str,
                logger: Any) -> tuple[str, int]:
    """The template's seed as a plain SQL script and its row count: seeded into a scratch
    database on ``server`` (envforge_seed_<name>, envforge-owned), dumped without owners or
    grants, and dropped again whatever happens."""
    scratch = server.with_database(target_database_name(environment, prefix="envforge_seed_"))
    report = seed_database(SeedRequest(
        target=scratch, schema_sql=schema_sql, fixtures=fixtures, generate=generate, seed=seed,
        replace=True, marker={"environment": environment, "run_id": run_id,
                              "purpose": "container seed"}), logger)
    try:
        with tempfile.TemporaryDirectory(prefix="envforge-container-seed-") as tmp:
            dump = Path(tmp) / "seed.sql"
            run_pg_tool([pg_tool("pg_dump"), "--format=plain", "--no-owner", "--no-privileges",
                         "--no-comments", f"--file={dump}", f"--dbname={scratch.conninfo()}"],
                        scratch, "dumping the seed for the database container")
            script = dump.read_text(encoding="utf-8")
    finally:
        drop_owned_database(server, scratch.dbname)
    size = len(script.encode())
    if size > MAX_SEED_BYTES:
        raise DatabaseError(
            f"the seed of {environment!r} is {size // 1024} KiB as SQL, over the "
            f"{MAX_SEED_BYTES // 1024} KiB a Kubernetes Secret can carry for a database "
            "container; generate fewer rows, or use database: seed on the shared server")
    return script, report.rows


def secret_name(name: str) -> str:
    """The Secret of the environment's database container (what the manifests refer to)."""
    return f"{name}-database"
