"""Where fetch:* actions may read from: the template's repository or catalog, or allowlisted
remote archives and Git repositories, cached and size-limited.

Local: a relative ``url`` may leave the template's folder (collections share skeletons with
``../../skeletons/x``) but never the *root* holding the template: the nearest enclosing Git
working copy, else the template directory of ENVFORGE_TEMPLATES_PATH that holds it, else the
template's own folder. Symbolic links that lead out are refused as before.

Remote: ``https://…/archive.tar.gz`` (``.tgz``, ``.zip``) and Git repositories
(``https://host/org/repo.git``, or ``git+https://…``), each optionally followed by
``//sub/dir`` and, for Git, ``#ref``; GitHub/GitLab browser URLs
(``https://github.com/org/repo/tree/main/dir``) are read as their Git repository. Every
remote fetch goes through the run's egress capability (envforge.capabilities): the URL is
parsed and must match an ENVFORGE_FETCH_ALLOW entry (origin and whole path segments, after
normalisation; nothing is allowed by default), every redirect is checked again, a host that
resolves to a private address is refused unless its entry names that address, and a
``token`` is sent only to the URL's own origin, never across a redirect (git: a header bound
to that origin, redirects off). Budgets: ENVFORGE_FETCH_MAX_BYTES (download and unpacked
size, default 50 MB), ENVFORGE_FETCH_TIMEOUT_S (the whole transfer, default 120 s),
ENVFORGE_FETCH_MAX_ENTRIES (archive or repository entries, default 20,000). Results are
cached per credential identity (a public fetch never sees what a token fetched), built
aside and renamed into place, so a killed download leaves no entry.
"""

from __future__ import annotations

import base64
import io
import re
import tarfile
import zipfile
from pathlib import Path

from envforge.capabilities import (
    Capabilities,
    Credential,
    FileBudget,
    TransferBudget,
    WorkspaceFiles,
    default_capabilities,
    is_git_name,
    parse_url,
    token_id,
)
from envforge.capabilities.budgets import CloneBudget
from envforge.capabilities.clone import clone_within_budget
from envforge.core.config import load_settings
from envforge.core.git_boundary import header_for
from envforge.core.paths import resolve_inside
from envforge.errors import (
    BudgetExceededError,
    CapabilityError,
    GitError,
    PathEscapeError,
    TemplateError,
)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024


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


def resolve_source(url: str, template_dir: Path, token: str | None = None,
                   capabilities: Capabilities | None = None) -> Path:
    """The local directory (or file) ``url`` names, fetching it first when remote (through
    ``capabilities``: the run's egress and caches)."""
    if is_remote(url):
        return fetch_remote(url, token, capabilities)
    text = url.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise PathEscapeError(url, f"template {template_dir.name}",
                              "absolute paths are not allowed; use a path relative to the "
                              "template")
    root = fetch_roots(template_dir)[0]
    candidate = (template_dir / text).resolve()
    if not candidate.is_relative_to(root):
        raise PathEscapeError(url, f"repository or catalog root {root}",
                              "it leads outside the repository/catalog that holds the template; "
                              "when it reaches a folder shared by the collection, name the "
                              "collection's folder with --catalog-root DIR or "
                              "ENVFORGE_TEMPLATES_PATH")
    return candidate


# --- remote ---------------------------------------------------------------------------

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


def fetch_remote(url: str, token: str | None = None,
                 capabilities: Capabilities | None = None) -> Path:
    """The cached tree of a remote archive or Git repository (fetched when missing)."""
    caps = capabilities or default_capabilities()
    location, subdir, ref, is_git = _split(url)
    shown = location[:200]
    try:
        parsed, _rule, addresses = caps.egress.check(location)
    except CapabilityError as e:
        raise TemplateError(f"url {shown!r}: {e}") from None
    credential = (Credential.bearer(parsed.origin, token, token_id(token)) if token else None)
    budget = caps.egress.budget

    def fill(staging: Path) -> None:
        tree = staging / "tree"
        if is_git:
            _git_clone(location, ref, tree, token, credential, addresses, budget)
        else:
            _download_archive(location, tree, credential, caps, budget)

    try:
        entry = caps.caches.get_or_fill("fetch", f"{'git' if is_git else 'archive'} "
                                        f"{parsed.url}#{ref}", credential, fill)
    except CapabilityError as e:
        raise TemplateError(f"url {shown!r}: {e}") from None
    tree = entry / "tree"
    return resolve_inside(tree, subdir, f"fetched {location}") if subdir else tree


def _git_clone(location: str, ref: str, dest: Path, token: str | None,
               credential: Credential | None, addresses: list[str],
               budget: TransferBudget) -> None:
    # under the git boundary (no hooks, no repository or user config); the token as a header
    # bound to the URL's own origin, redirects off, and the host pinned to the address the
    # egress check accepted (no second lookup)
    extra: list[tuple[str, str]] = [("protocol.file.allow", "never"),
                                    ("http.followRedirects", "false")]
    if credential is not None and token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        extra += header_for(str(credential.origin), f"Authorization: Basic {basic}")
    host, port = _host_port(location)
    if host and addresses and not _is_literal(host):
        extra.append(("http.curloptResolve", f"{host}:{port}:{addresses[0]}"))
    # the fetch budget, enforced while git runs: the pack's bytes, then the tree's entries and
    # bytes before anything is checked out (envforge.capabilities.clone)
    clone_budget = CloneBudget(budget.max_bytes, budget.max_entries, budget.deadline_seconds,
                               ("ENVFORGE_FETCH_MAX_BYTES", "ENVFORGE_FETCH_MAX_ENTRIES",
                                "ENVFORGE_FETCH_TIMEOUT_S"))
    try:
        clone_within_budget(location, dest, ref, budget=clone_budget, extra_config=extra,
                            secrets=[token] if token else [], what="git clone")
    except GitError as e:
        raise TemplateError(f"url {location!r}: {e}") from None
    _check_tree(dest, location, budget)


def _host_port(location: str) -> tuple[str, int]:
    parsed = parse_url(location)
    return parsed.origin.host, parsed.origin.port


def _is_literal(host: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+|[0-9a-f:]+", host))


def _check_tree(dest: Path, location: str, budget: TransferBudget) -> None:
    """A cloned tree within the entry and byte budgets (links counted, never followed)."""
    total = 0
    walked = WorkspaceFiles(dest, describe=f"fetched {location}").walk()
    for entries, (_path, kind, info) in enumerate(walked, start=1):
        total += info.st_size if kind == "file" else 0
        if entries > budget.max_entries:
            raise TemplateError(f"url {location!r}: the repository holds more than "
                                f"{budget.max_entries:,} entries (ENVFORGE_FETCH_MAX_ENTRIES)")
        if total > budget.max_bytes:
            raise TemplateError(f"url {location!r}: the repository holds more than "
                                f"{budget.max_bytes:,} bytes (ENVFORGE_FETCH_MAX_BYTES)")


def _download_archive(location: str, dest: Path, credential: Credential | None,
                      caps: Capabilities, budget: TransferBudget) -> None:
    with caps.egress.client([credential] if credential else [], budget) as client:
        answer = client.request("GET", location)
    if answer.status >= 400:
        raise TemplateError(f"url {location!r}: the server answered {answer.status}")
    data = answer.body
    dest.mkdir(parents=True)
    files = WorkspaceFiles(dest, FileBudget(max_files=budget.max_entries,
                                            max_bytes=budget.max_bytes, max_depth=32),
                           describe=f"archive {location}")
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            _unzip(data, files, location, budget)
        else:
            _untar(data, files, location, budget)
    except BudgetExceededError as e:
        raise TemplateError(f"url {location!r}: {e}") from None
    entries = [name for name in _top_level(dest)]
    if len(entries) == 1 and (dest / entries[0]).is_dir() \
            and not (dest / entries[0]).is_symlink():  # one top folder (GitHub's archives)
        inner = ".envforge-top"  # moved aside first: a child may share the folder's name
        if entries[0] != inner:
            files.rename(entries[0], inner)
        for child in _top_level(dest / inner):
            files.rename(f"{inner}/{child}", child)
        files.remove(inner)


def _top_level(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _member_name(name: str, location: str) -> str | None:
    """The member's relative path, None to skip it (``.git``), PathEscapeError when it
    leads out."""
    clean = name.replace("\\", "/")
    while clean.startswith("./"):
        clean = clean[2:]
    if clean.startswith("/") or any(part == ".." for part in clean.split("/")):
        raise PathEscapeError(name[:200], f"archive {location}",
                              "a member leads outside the archive")
    if any(is_git_name(part) for part in clean.split("/")):
        return None
    return clean.strip("/") or None


def _untar(data: bytes, files: WorkspaceFiles, location: str, budget: TransferBudget) -> None:
    total = count = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar:
                count += 1
                if count > budget.max_entries:
                    raise TemplateError(f"url {location!r}: more than {budget.max_entries:,} "
                                        "entries (ENVFORGE_FETCH_MAX_ENTRIES)")
                name = _member_name(member.name, location)
                if name is None:
                    continue
                if member.isdir():
                    files.mkdir(name)
                    continue
                if not member.isfile():
                    continue  # links, devices, fifos: never written
                total += member.size
                if total > budget.max_bytes:
                    raise TemplateError(f"url {location!r}: unpacks to more than "
                                        f"ENVFORGE_FETCH_MAX_BYTES ({budget.max_bytes:,} bytes)")
                source = tar.extractfile(member)
                if source is None:
                    continue
                files.write_bytes(name, source.read(member.size + 1)[:member.size],
                                  executable=bool(member.mode & 0o111), overwrite=True)
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise TemplateError(f"url {location!r}: not a readable tar or zip archive "
                            f"({type(e).__name__})") from None


def _unzip(data: bytes, files: WorkspaceFiles, location: str, budget: TransferBudget) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > budget.max_entries:
                raise TemplateError(f"url {location!r}: {len(infos):,} entries, more than "
                                    f"{budget.max_entries:,} (ENVFORGE_FETCH_MAX_ENTRIES)")
            if sum(i.file_size for i in infos) > budget.max_bytes:
                raise TemplateError(f"url {location!r}: unpacks to more than "
                                    f"ENVFORGE_FETCH_MAX_BYTES ({budget.max_bytes:,} bytes)")
            for info in infos:
                name = _member_name(info.filename, location)
                if name is None:
                    continue
                if info.is_dir():
                    files.mkdir(name)
                    continue
                with archive.open(info) as member:
                    data_out = member.read(info.file_size + 1)
                if len(data_out) > info.file_size:
                    raise TemplateError(f"url {location!r}: member {name!r} unpacks to more "
                                        "than it declares")
                files.write_bytes(name, data_out, overwrite=True)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as e:
        raise TemplateError(f"url {location!r}: not a readable zip archive "
                            f"({type(e).__name__})") from None
