"""Never build a commit twice: an image's tag is its cache key, checked in the registry.

The tag is ``<12-hex commit>-<8-hex content key>``, where the content key hashes what else
decides the image: the Dockerfile text (the repository's own or the rendered one), the build
arguments and the build context path. If the registry already has a manifest under that tag,
the build is skipped and its digest is returned. The check is one HEAD request to the
registry's /v2/ API.

The key does not depend on the image's name, so a build is shared between names too: every
build is also tagged in one repository of the registry, :data:`SHARED_REPOSITORY`, and an
image name that lacks the tag gets it from there (its blobs mounted across repositories, its
manifest put under the new name: the same digest, nothing built or uploaded). Preview
environments that name their image after themselves (preview-app) thus build a commit once,
however many pull requests point at it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from envforge.errors import RegistryError
from envforge.images.registry_client import Manifest, RegistryClient

#: Bump when the meaning of the key changes, so old tags are not mistaken for new builds.
KEY_VERSION = 1
#: Upper bound on tags inspected when deciding whether an image is shared.
MAX_SHARED_CHECK = 200
#: The repository (inside the registry's namespace) where every build is tagged by its key
SHARED_REPOSITORY = "envforge/builds"
#: Single-image manifests: their blobs are the config and the layers (an index is not shared)
IMAGE_MANIFESTS = frozenset({
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
})


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


def manifest_blobs(manifest: Manifest) -> list[str] | None:
    """The digests of the blobs a single-image manifest names (config, then layers); None
    for anything else (an index, or a manifest that is not JSON)."""
    if manifest.media_type not in IMAGE_MANIFESTS:
        return None
    try:
        data = json.loads(manifest.body)
        blobs = [data["config"]["digest"], *(layer["digest"] for layer in data["layers"])]
    except (ValueError, KeyError, TypeError):
        return None
    return [str(b) for b in blobs]


def copy_tag(client: RegistryClient, source: str, target: str, tag: str) -> str | None:
    """Give ``target`` the image ``source:tag`` under the same tag, without building or
    uploading: mount its blobs from ``source``, then put its manifest. The digest (the same
    as the source's), or None when the source lacks the tag or the registry will not mount
    (the caller builds instead)."""
    manifest = client.manifest(source, tag)
    if manifest is None:
        return None
    blobs = manifest_blobs(manifest)
    if blobs is None:
        return None
    for blob in blobs:
        if not client.mount_blob(target, blob, source):
            return None
    return client.put_manifest(target, tag, manifest)


def reuse_shared(client: RegistryClient, shared: str, repository: str, tag: str
                 ) -> str | None:
    """``repository:tag`` copied from the shared builds (its digest), or None when no other
    name has built this key yet."""
    if repository == shared:
        return None
    return copy_tag(client, shared, repository, tag)


def share_build(client: RegistryClient, repository: str, shared: str, tag: str) -> str | None:
    """Tag a fresh build ``repository:tag`` in the shared builds too, so other names reuse
    it. Best effort: the build stands whatever happens; the error, if any, is returned."""
    if repository == shared:
        return None
    try:
        copy_tag(client, repository, shared, tag)
    except RegistryError as e:
        return str(e)
    return None
