"""Where fetch:* actions may read from: the template's repository or catalog, or allowlisted
remote archives and Git repositories, cached and size-limited.

Local: a relative ``url`` may leave the template's folder (collections share skeletons with
``../../skeletons/x``) but never the *root* holding the template: the nearest enclosing Git
working copy, else the template directory of ENVFORGE_TEMPLATES_PATH that holds it, else the
template's own folder. Symbolic links that lead out are refused as before.

Remote: ``https://…/archive.tar.gz`` (``.tgz``, ``.zip``) and Git repositories
(``https://host/org/repo.git``, or ``git+https://…``), each optionally followed by
``//sub/dir`` and, for Git, ``#ref``; GitHub/GitLab browser URLs
(``https://github.com/org/repo/tree/main/dir``) are read as their Git repository. Only URLs
starting with a prefix listed in ENVFORGE_FETCH_ALLOW (space or comma separated) are fetched;
nothing is allowed by default.
ENVFORGE_FETCH_MAX_BYTES caps a download and its unpacked size (default 50 MB). Results are
cached under $ENVFORGE_HOME/cache/fetch by URL. Git runs with hooks disabled and no prompt;
a token goes in a header through git's environment, never on a command line or in a message.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from envforge.config import load_settings
from envforge.errors import ConfigurationError, PathEscapeError, TemplateError
from envforge.git_boundary import subprocess_env
from envforge.paths import resolve_inside

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
_TIMEOUT_S = 120


def is_remote(url: str) -> bool:
    return "://" in url or url.startswith("git+")


def fetch_roots(template_dir: Path) -> list[Path]:
    """The directories a relative fetch URL may reach, most specific first."""
    here = template_dir.resolve()
    for parent in [here, *here.parents]:
        if (parent / ".git").exists():
            return [parent]
    roots = [p.resolve() for p in load_settings().templates_path
             if p.is_dir() and here.is_relative_to(p.resolve())]
    return sorted(roots, key=lambda p: len(p.parts), reverse=True)[:1] or [here]


def resolve_source(url: str, template_dir: Path, token: str | None = None) -> Path:
    """The local directory (or file) ``url`` names, fetching it first when remote."""
    if is_remote(url):
        return fetch_remote(url, token)
    text = url.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise PathEscapeError(url, f"template {template_dir.name}",
                              "absolute paths are not allowed; use a path relative to the "
                              "template")
    root = fetch_roots(template_dir)[0]
    candidate = (template_dir / text).resolve()
    if not candidate.is_relative_to(root):
        raise PathEscapeError(url, f"repository or catalog root {root}",
                              "it leads outside the repository/catalog that holds the template")
    return candidate


# --- remote ---------------------------------------------------------------------------

def allowlist() -> list[str]:
    raw = os.environ.get("ENVFORGE_FETCH_ALLOW", "")
    return [p for p in re.split(r"[\s,]+", raw) if p]


def max_bytes() -> int:
    raw = os.environ.get("ENVFORGE_FETCH_MAX_BYTES", "")
    try:
        return int(raw) if raw.strip() else DEFAULT_MAX_BYTES
    except ValueError:
        raise ConfigurationError(f"ENVFORGE_FETCH_MAX_BYTES={raw!r} is not a number of bytes") \
            from None


_TREE_URL = re.compile(r"^(https?://[^/]+/[^/]+/[^/]+?)(?:\.git)?(?:/-)?/tree/([^/]+)/?(.*)$")


def _split(url: str) -> tuple[str, str, str, bool]:
    """(location, subdir, ref, is_git) of a remote fetch URL; a GitHub/GitLab browser URL
    (``https://host/org/repo/tree/<ref>/<path>``) is its repository's Git URL."""
    tree = _TREE_URL.match(url)
    if tree:
        return f"{tree.group(1)}.git", tree.group(3).strip("/"), tree.group(2), True
    is_git = url.startswith("git+")
    location = url[4:] if is_git else url
    location, _, ref = location.partition("#")
    scheme, sep, rest = location.partition("://")
    rest, _, subdir = rest.partition("//")
    location = f"{scheme}{sep}{rest}"
    is_git = is_git or location.rstrip("/").endswith(".git")
    return location, subdir, ref, is_git


def fetch_remote(url: str, token: str | None = None) -> Path:
    location, subdir, ref, is_git = _split(url)
    if not location.startswith(("https://", "http://")):
        raise TemplateError(f"url {url!r}: only https:// (or allowlisted http://) archives and "
                            "Git repositories can be fetched")
    allowed = allowlist()
    if not any(location.startswith(prefix) for prefix in allowed):
        raise TemplateError(
            f"url {location!r} is not allowed: remote fetches must match a prefix in "
            f"ENVFORGE_FETCH_ALLOW (now: {' '.join(allowed) or 'empty'}); add one to allow it")
    key = hashlib.sha256(f"{location}#{ref}".encode()).hexdigest()[:20]
    cache = load_settings().cache_dir / "fetch" / key
    if not (cache / ".complete").exists():
        shutil.rmtree(cache, ignore_errors=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=cache.parent))
        try:
            if is_git:
                _git_clone(location, ref, staging / "tree", token)
            else:
                _download_archive(location, staging / "tree", token)
            (staging / ".complete").write_text(location + "\n")
            staging.rename(cache)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    tree = cache / "tree"
    return resolve_inside(tree, subdir, f"fetched {location}") if subdir else tree


def _git_clone(location: str, ref: str, dest: Path, token: str | None) -> None:
    # under the git boundary (no hooks, no repository or user config), and the token as a
    # header through git's environment: never on a command line
    extra_config: list[tuple[str, str]] = [("protocol.file.allow", "never")]
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        extra_config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
    env = subprocess_env(extra_config=extra_config)
    cmd = ["git", "clone", "--quiet", "--depth", "1", "--no-tags"]
    if ref:
        cmd += ["--branch", ref]
    cmd += ["--", location, str(dest)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise TemplateError(f"url {location!r}: git clone took longer than {_TIMEOUT_S} s") \
            from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        if token:
            last = last.replace(token, "***")
        raise TemplateError(f"url {location!r}: git clone failed: {last}")
    shutil.rmtree(dest / ".git", ignore_errors=True)
    limit = max_bytes()
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    if total > limit:
        raise TemplateError(f"url {location!r}: the repository holds {total:,} bytes, more "
                            f"than ENVFORGE_FETCH_MAX_BYTES ({limit:,})")


def _download_archive(location: str, dest: Path, token: str | None) -> None:
    limit = max_bytes()
    request = urllib.request.Request(location, headers={"User-Agent": "envforge"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            data = response.read(limit + 1)
    except urllib.error.HTTPError as e:
        raise TemplateError(f"url {location!r}: the server answered {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise TemplateError(f"url {location!r}: cannot download it ({e})") from None
    if len(data) > limit:
        raise TemplateError(f"url {location!r}: larger than ENVFORGE_FETCH_MAX_BYTES "
                            f"({limit:,} bytes)")
    dest.mkdir(parents=True)
    if zipfile.is_zipfile(io.BytesIO(data)):
        _unzip(data, dest, location, limit)
    else:
        _untar(data, dest, location, limit)
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir():  # archives of one top folder (GitHub's)
        inner = entries[0]
        for child in list(inner.iterdir()):
            child.rename(dest / child.name)
        inner.rmdir()


def _safe_member(name: str, location: str) -> str:
    clean = name.replace("\\", "/")
    while clean.startswith("./"):
        clean = clean[2:]
    if clean.startswith("/") or any(part == ".." for part in clean.split("/")):
        raise PathEscapeError(name, f"archive {location}", "a member leads outside the archive")
    return clean


def _untar(data: bytes, dest: Path, location: str, limit: int) -> None:
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar:
                name = _safe_member(member.name, location)
                if member.isdir():
                    (dest / name).mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    continue  # links, devices, fifos: never written
                total += member.size
                if total > limit:
                    raise TemplateError(f"url {location!r}: unpacks to more than "
                                        f"ENVFORGE_FETCH_MAX_BYTES ({limit:,} bytes)")
                source = tar.extractfile(member)
                if source is None:
                    continue
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read())
                target.chmod(0o755 if member.mode & 0o111 else 0o644)
    except tarfile.TarError as e:
        raise TemplateError(f"url {location!r}: not a tar or zip archive ({e})") from None


def _unzip(data: bytes, dest: Path, location: str, limit: int) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if sum(i.file_size for i in archive.infolist()) > limit:
            raise TemplateError(f"url {location!r}: unpacks to more than "
                                f"ENVFORGE_FETCH_MAX_BYTES ({limit:,} bytes)")
        for info in archive.infolist():
            name = _safe_member(info.filename, location)
            target = dest / name
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info))
