"""Never build a commit twice: an image's tag is its cache key, checked in the registry.

The tag is ``<12-hex commit>-<8-hex content key>``, where the content key hashes what else
decides the image: the Dockerfile text (the repository's own or the rendered one), the build
arguments and the build context path. If the registry already has a manifest under that tag,
the build is skipped and its digest is returned. The check is one HEAD request to the
registry's /v2/ API.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from envforge.images.registry_client import RegistryClient

#: Bump when the meaning of the key changes, so old tags are not mistaken for new builds.
KEY_VERSION = 1
#: Upper bound on tags inspected when deciding whether an image is shared.
MAX_SHARED_CHECK = 200


def content_key(dockerfile: str, build_args: Mapping[str, str], context: str = ".") -> str:
    """A stable hash of everything besides the commit that changes the built image."""
    payload = json.dumps(
        {"v": KEY_VERSION, "dockerfile": dockerfile, "context": context,
         "build_args": dict(sorted(build_args.items()))},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def image_tag(commit: str, key: str) -> str:
    """The cache tag of a commit built with a given content key."""
    return f"{commit[:12]}-{key[:8]}"


@dataclass(frozen=True)
class CacheLookup:
    digest: str | None
    seconds: float

    @property
    def hit(self) -> bool:
        return self.digest is not None


def lookup(client: RegistryClient, repository: str, tag: str) -> CacheLookup:
    """Ask the registry whether ``repository:tag`` exists; its digest if it does."""
    started = time.perf_counter()
    digest = client.manifest_digest(repository, tag)
    return CacheLookup(digest=digest, seconds=time.perf_counter() - started)


def tags_sharing_digest(client: RegistryClient, repository: str, digest: str,
                        except_tag: str) -> list[str]:
    """Other tags of ``repository`` that point at ``digest`` (deleting it would break them)."""
    shared: list[str] = []
    for tag in client.tags(repository)[:MAX_SHARED_CHECK]:
        if tag != except_tag and client.manifest_digest(repository, tag) == digest:
            shared.append(tag)
    return shared
