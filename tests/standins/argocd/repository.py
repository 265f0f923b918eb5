"""The stand-in's repo server: a bare mirror per repository URL (git with hooks disabled),
``targetRevision`` resolved to a commit, and the plain manifests under a path rendered."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml


class ManifestError(Exception):
    """The source cannot be fetched or rendered (Argo CD: a ComparisonError condition)."""


def run_git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", "-c", "core.hooksPath=/dev/null", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if done.returncode != 0:
        raise ManifestError(f"git {args[0]}: {done.stderr.strip()[-300:]}")
    return done.stdout


class RepositoryCache:
    """A bare mirror per repository URL; resolves a targetRevision and reads a path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, url: str, revision: str) -> tuple[Path, str]:
        mirror = self.root / hashlib.sha256(url.encode()).hexdigest()[:16]
        if not mirror.exists():
            run_git("init", "--quiet", "--bare", str(mirror))
        wanted = revision or "HEAD"
        refs = dict(reversed(line.split("\t")) for line in
                    run_git("ls-remote", url).splitlines() if "\t" in line)
        sha = (refs.get(wanted) or refs.get(f"refs/heads/{wanted}")
               or refs.get(f"refs/tags/{wanted}^{{}}") or refs.get(f"refs/tags/{wanted}"))
        if sha is None:
            if len(wanted) >= 7 and all(c in "0123456789abcdef" for c in wanted):
                sha = wanted
            else:
                raise ManifestError(f"unable to resolve {wanted!r} to a commit SHA in {url}")
        present = subprocess.run(["git", "--git-dir", str(mirror), "cat-file", "-e",
                                  f"{sha}^{{commit}}"], capture_output=True).returncode == 0
        if not present:
            run_git("--git-dir", str(mirror), "fetch", "--quiet", "--force", url,
                 "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
        sha = run_git("--git-dir", str(mirror), "rev-parse", "--verify",
                   f"{sha}^{{commit}}").strip()
        return mirror, sha

    def manifests(self, mirror: Path, sha: str, path: str, recurse: bool) -> list[dict[str, Any]]:
        path = path.strip("/") or "."
        prefix = "" if path == "." else path + "/"
        listed = run_git("--git-dir", str(mirror), "ls-tree", "-r", "--name-only", sha, "--",
                      prefix or ".").splitlines()
        if not listed:
            raise ManifestError(f"{path}: app path does not exist")
        objects: list[dict[str, Any]] = []
        for name in sorted(listed):
            rest = name[len(prefix):]
            if not name.endswith((".yaml", ".yml", ".json")) or ("/" in rest and not recurse):
                continue
            text = run_git("--git-dir", str(mirror), "show", f"{sha}:{name}")
            try:
                documents = list(yaml.safe_load_all(text))
            except yaml.YAMLError as e:
                raise ManifestError(f"{name}: {e}") from e
            for doc in documents:
                if isinstance(doc, dict) and doc.get("kind", "").endswith("List") \
                        and "items" in doc:
                    objects.extend(doc["items"])
                elif isinstance(doc, dict) and doc:
                    if "apiVersion" not in doc or "kind" not in doc:
                        raise ManifestError(f"{name}: object has no apiVersion or kind")
                    objects.append(doc)
        return objects



class InvalidSpec(ManifestError):
    """The Application itself is wrong (Argo CD: an InvalidSpecError condition)."""


