"""Which repositories a template's ``image:build`` may build from: a capability like egress.

``repoUrl`` comes from a template or from a developer's form. Without a rule it could name a
repository on the worker's own disk (``file://`` or a path): the GitOps working copy, or the
source mirrors of other teams' private repositories that envforge keeps in its cache, which
would then be built and pushed to a registry of the caller's choosing. A template builds only
from the sources the operator lists in ``ENVFORGE_IMAGE_SOURCES`` (settings
``images.sources``): URL prefixes, by default ``https://``, ``ssh://`` and ``git@`` (network
Git hosts; a private one still needs its credentials, envforge.images.git_auth). A local
repository is allowed only under a listed ``file://`` folder, compared after resolving ``..``
and links, so no path can step out of it. The operator's own ``envforge images build`` is not
a template's and is not checked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from envforge.core.git_boundary import redact_url

DEFAULT_SOURCES = ("https://", "ssh://", "git@")


def _local_path(url: str) -> str | None:
    """The folder a ``file://`` URL or a plain path names, resolved; None for a network URL."""
    if url.startswith("file:"):
        return os.path.realpath(unquote(urlsplit(url).path))
    if "://" in url or (":" in url.split("/", 1)[0] and not url.startswith("/")):
        return None  # a network URL, or scp-like user@host:path
    return os.path.realpath(url)


@dataclass(frozen=True)
class SourceScope:
    """The repository URL prefixes templates may build images from."""

    prefixes: tuple[str, ...] = DEFAULT_SOURCES

    def allows(self, url: str) -> bool:
        local = _local_path(url)
        for prefix in self.prefixes:
            if prefix.startswith("file:"):
                folder = os.path.realpath(unquote(urlsplit(prefix).path))
                if local is not None and (local == folder or local.startswith(
                        folder.rstrip("/") + "/")):
                    return True
            elif local is None and url.startswith(prefix):
                return True
        return False

    def check(self, url: str, where: str, error: type[Exception]) -> None:
        """Raise ``error`` (one line) unless ``url`` is an allowed source."""
        if not self.allows(url):
            raise error(
                f"{where}: repository {redact_url(url[:200])!r} is not a source image builds "
                f"may read (ENVFORGE_IMAGE_SOURCES: {' '.join(self.prefixes) or 'none'}); a local "
                "repository needs its folder listed there as file:///path/ by the operator")
