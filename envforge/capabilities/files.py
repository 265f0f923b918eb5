"""Workspace files: the one way an action writes (and reads back) files beneath a root.

Paths are resolved the way ``openat`` does: from a descriptor of the root, one component at a
time, each opened with ``O_NOFOLLOW`` (``O_DIRECTORY`` for folders), so a symbolic link is
never followed, at the end of a path or in the middle of one, whoever made it (a template, a
fetched archive, or the target repository: its own links are data, copied and committed as
links, never written through). New files are created with ``O_EXCL``; replacing one writes a
temporary file beside it and renames it over the old name (which replaces a link itself, not
what it points at).

Names are checked before anything is opened, with one-line errors naming the file: no NUL or
control character, no component over 255 bytes, no ``..``, no absolute path, and never
``.git`` in any spelling a filesystem may take for it (``.GIT``, ``.git `` or ``.git.``,
``git~1``, with ignorable Unicode in it). Budgets bound the files, bytes and depth one
:class:`WorkspaceFiles` writes (a 100,000-file skeleton stops at the first file over).
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from envforge.errors import BudgetExceededError, FileRefusedError

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_NAME_BYTES = 255
_MAX_PATH_BYTES = 4096
#: code points HFS+ ignores in names (git's is_hfs_dotgit list) and other zero-width ones
_IGNORABLE = dict.fromkeys([0x200B, 0x200C, 0x200D, 0x200E, 0x200F, *range(0x202A, 0x202F),
                            *range(0x206A, 0x2070), 0xFEFF])


@dataclass(frozen=True)
class FileBudget:
    """What one writer may create: files, bytes, and folder depth."""

    max_files: int = 20_000
    max_bytes: int = 512 * 1024 * 1024
    max_depth: int = 32


def is_git_name(part: str) -> bool:
    """Whether a path component would be taken for ``.git`` by some filesystem."""
    folded = unicodedata.normalize("NFC", part.translate(_IGNORABLE)).casefold()
    folded = folded.rstrip(" .")
    return folded in (".git", "git~1")


def check_path(path: str, where: str, budget: FileBudget | None = None) -> tuple[str, ...]:
    """The components of a relative ``path``, or FileRefusedError naming it and why."""
    if not isinstance(path, str):
        raise FileRefusedError(f"{where}: path {path!r} is not text")
    shown = repr(path[:120] + ("..." if len(path) > 120 else ""))
    if "\0" in path:
        raise FileRefusedError(f"{where}: file {shown} holds a NUL character; rename it")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise FileRefusedError(f"{where}: file {shown} holds a control character; rename it")
    text = path.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise FileRefusedError(f"{where}: file {shown} is an absolute path; use a path "
                               "relative to the workspace")
    if len(text.encode()) > _MAX_PATH_BYTES:
        raise FileRefusedError(f"{where}: file {shown} has a path over {_MAX_PATH_BYTES} bytes")
    parts = tuple(p for p in text.split("/") if p not in ("", "."))
    for part in parts:
        if part == "..":
            raise FileRefusedError(f"{where}: file {shown} holds '..'; paths stay inside")
        if len(part.encode()) > _MAX_NAME_BYTES:
            raise FileRefusedError(f"{where}: file {shown} has a name over {_MAX_NAME_BYTES} "
                                   "bytes (the filesystem's limit); shorten it")
        if is_git_name(part):
            raise FileRefusedError(f"{where}: file {shown} is inside '.git' (in some spelling), "
                                   "the repository's own metadata, never an action's output")
    if budget is not None and len(parts) > budget.max_depth:
        raise BudgetExceededError(f"{where}: file {shown} is {len(parts)} folders deep, more "
                                  f"than the {budget.max_depth} allowed (ENVFORGE_MAX_DEPTH)")
    return parts


class WorkspaceFiles:
    """Reads and writes beneath ``root``; never through a link, never in ``.git``."""

    def __init__(self, root: Path, budget: FileBudget | None = None,
                 describe: str = "workspace") -> None:
        self.root = Path(root)
        self.budget = budget or FileBudget()
        self.describe = describe
        self.files_written = 0
        self.bytes_written = 0

    # --- resolution ----------------------------------------------------------------------

    def _refused(self, rel: str, why: str) -> FileRefusedError:
        return FileRefusedError(f"{self.describe}: file {rel[:200]!r} {why}")

    @contextmanager
    def _parent(self, rel: str, create: bool) -> Iterator[tuple[int, str]]:
        """(descriptor of the folder holding ``rel``, its last name), walked without links."""
        parts = check_path(rel, self.describe, self.budget)
        if not parts:
            raise self._refused(rel, "names the root itself, not a file in it")
        fd = self._open_root()
        try:
            for part in parts[:-1]:
                child = self._step(fd, part, rel, create)
                os.close(fd)
                fd = child
            yield fd, parts[-1]
        finally:
            os.close(fd)

    def _open_root(self) -> int:
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise FileRefusedError(f"{self.describe}: its root {self.root} cannot be opened "
                                   f"({e.strerror})") from None

    def _step(self, fd: int, part: str, rel: str, create: bool) -> int:
        """A new descriptor of folder ``part`` in ``fd`` (made when ``create``); ``fd``
        stays open (the caller closes it)."""
        try:
            try:
                return os.open(part, _O_DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                return os.open(part, _O_DIR, dir_fd=fd)
        except FileNotFoundError:
            raise
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self._refused(rel, f"lies under {part!r}, which is a symbolic link or "
                                    "not a folder; links are never followed") from None
            raise self._refused(rel, f"cannot be reached ({e.strerror})") from None

    def _count(self, rel: str, size: int) -> None:
        self.files_written += 1
        self.bytes_written += size
        if self.files_written > self.budget.max_files:
            raise BudgetExceededError(
                f"{self.describe}: file {rel[:200]!r} is one more than the "
                f"{self.budget.max_files:,} files allowed (ENVFORGE_MAX_FILES)")
        if self.bytes_written > self.budget.max_bytes:
            raise BudgetExceededError(
                f"{self.describe}: file {rel[:200]!r} takes the total over the "
                f"{self.budget.max_bytes:,} bytes allowed (ENVFORGE_MAX_WRITE_BYTES)")

    # --- writing -------------------------------------------------------------------------

    def write_bytes(self, rel: str, data: bytes, *, executable: bool = False,
                    overwrite: bool = True) -> None:
        """Create ``rel`` holding ``data`` (folders made as needed); with ``overwrite`` an
        existing file (or link) of that name is replaced, never written through."""
        self._count(rel, len(data))
        mode = 0o755 if executable else 0o644
        try:
            with self._parent(rel, create=True) as (fd, name):
                if not overwrite:
                    self._write_new(fd, name, data, mode, rel)
                    return
                temp = f".{name[:200]}.{uuid.uuid4().hex[:8]}.envforge-tmp"
                self._write_new(fd, temp, data, mode, rel)
                try:
                    os.replace(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
                except OSError as e:
                    os.unlink(temp, dir_fd=fd)
                    raise self._refused(rel, f"cannot replace what is there ({e.strerror})"
                                        ) from None
        except FileNotFoundError:
            raise self._refused(rel, "cannot be created (its folder vanished)") from None

    def _write_new(self, fd: int, name: str, data: bytes, mode: int, rel: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            out = os.open(name, flags, mode, dir_fd=fd)
        except FileExistsError:
            raise self._refused(rel, "already exists") from None
        except OSError as e:
            raise self._refused(rel, f"cannot be created ({e.strerror})") from None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view):]
            os.fchmod(out, mode)
        finally:
            os.close(out)

    def write_text(self, rel: str, text: str, *, overwrite: bool = True) -> None:
        self.write_bytes(rel, text.encode("utf-8"), overwrite=overwrite)

    def mkdir(self, rel: str) -> None:
        """Make folder ``rel`` and its parents (existing ones are fine, links are not)."""
        parts = check_path(rel, self.describe, self.budget)
        if not parts:
            return
        with self._parent(rel, create=True) as (fd, name):
            os.close(self._step(fd, name, rel, create=True))

    def symlink(self, rel: str, target: str, *, overwrite: bool = True) -> None:
        """Record a link as data (what a repository holds): it is made, never followed."""
        self._count(rel, 0)
        if "\0" in target:
            raise self._refused(rel, "is a link whose target holds a NUL")
        with self._parent(rel, create=True) as (fd, name):
            if overwrite:
                self._remove_at(fd, name, missing_ok=True)
            try:
                os.symlink(target, name, dir_fd=fd)
            except FileExistsError:
                raise self._refused(rel, "already exists") from None

    def remove(self, rel: str, *, missing_ok: bool = True) -> bool:
        """Remove the file, link or folder (recursively, links not followed) at ``rel``."""
        try:
            with self._parent(rel, create=False) as (fd, name):
                return self._remove_at(fd, name, missing_ok)
        except FileNotFoundError:
            if missing_ok:
                return False
            raise self._refused(rel, "does not exist") from None

    def _remove_at(self, fd: int, name: str, missing_ok: bool) -> bool:
        try:
            info = os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            if missing_ok:
                return False
            raise
        if stat.S_ISDIR(info.st_mode):
            child = os.open(name, _O_DIR, dir_fd=fd)
            try:
                for entry in os.listdir(child):
                    self._remove_at(child, entry, True)
            finally:
                os.close(child)
            os.rmdir(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)
        return True

    def rename(self, source: str, target: str, *, overwrite: bool = False) -> None:
        """Move ``source`` to ``target`` inside the root; neither side through a link."""
        with self._parent(source, create=False) as (src_fd, src_name):
            try:
                os.lstat(src_name, dir_fd=src_fd)
            except FileNotFoundError:
                raise self._refused(source, "does not exist") from None
            with self._parent(target, create=True) as (dst_fd, dst_name):
                exists = self._lexists(dst_fd, dst_name)
                if exists and not overwrite:
                    raise self._refused(target, "already exists; set overwrite: true to "
                                        "replace it")
                if exists:
                    self._remove_at(dst_fd, dst_name, True)
                try:
                    os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                except OSError as e:
                    raise self._refused(target, f"cannot be renamed to ({e.strerror})"
                                        ) from None

    def move_to(self, rel: str, other: WorkspaceFiles, other_rel: str) -> None:
        """Move ``rel`` from beneath this root to ``other_rel`` beneath ``other``'s (same
        filesystem), no link followed on either side (fs:delete's undo folder)."""
        with self._parent(rel, create=False) as (src_fd, src_name):
            if not self._lexists(src_fd, src_name):
                raise self._refused(rel, "does not exist")
            with other._parent(other_rel, create=True) as (dst_fd, dst_name):
                if other._lexists(dst_fd, dst_name):
                    other._remove_at(dst_fd, dst_name, True)
                try:
                    os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                except OSError as e:
                    raise self._refused(rel, f"cannot be moved ({e.strerror})") from None

    # --- reading -------------------------------------------------------------------------

    @staticmethod
    def _lexists(fd: int, name: str) -> bool:
        try:
            os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            return False
        return True

    def exists(self, rel: str) -> bool:
        """Whether ``rel`` exists (a link counts as itself; a link on the way: no)."""
        try:
            with self._parent(rel, create=False) as (fd, name):
                return self._lexists(fd, name)
        except (FileNotFoundError, FileRefusedError):
            return False

    def read_bytes(self, rel: str, limit: int | None = None) -> bytes:
        """The contents of regular file ``rel`` (a link is refused, not followed)."""
        try:
            with self._parent(rel, create=False) as (fd, name):
                try:
                    handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                     dir_fd=fd)
                except OSError as e:
                    if e.errno == errno.ELOOP:
                        raise self._refused(rel, "is a symbolic link; links are never "
                                            "followed") from None
                    raise
        except FileNotFoundError:
            raise self._refused(rel, "does not exist") from None
        try:
            if not stat.S_ISREG(os.fstat(handle).st_mode):
                raise self._refused(rel, "is not a regular file")
            with os.fdopen(handle, "rb", closefd=False) as stream:
                data = stream.read(-1 if limit is None else limit + 1)
        finally:
            os.close(handle)
        if limit is not None and len(data) > limit:
            raise BudgetExceededError(f"{self.describe}: file {rel[:200]!r} is larger than "
                                      f"{limit:,} bytes")
        return data

    def walk(self, rel: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
        """(relative path, kind 'dir'/'file'/'link', lstat) of everything under ``rel``,
        parents before children, sorted; links are reported, never entered; ``.git`` is
        skipped."""
        parts = check_path(rel, self.describe) if rel else ()
        fd = self._open_root()
        try:
            for part in parts:
                child = self._step(fd, part, rel, create=False)
                os.close(fd)
                fd = child
            yield from self._walk_fd(fd, "/".join(parts))
        finally:
            os.close(fd)

    def _walk_fd(self, fd: int, prefix: str) -> Iterator[tuple[str, str, os.stat_result]]:
        for name in sorted(os.listdir(fd)):
            if is_git_name(name):
                continue
            path = f"{prefix}/{name}" if prefix else name
            info = os.lstat(name, dir_fd=fd)
            if stat.S_ISLNK(info.st_mode):
                yield path, "link", info
            elif stat.S_ISDIR(info.st_mode):
                yield path, "dir", info
                child = os.open(name, _O_DIR, dir_fd=fd)
                try:
                    yield from self._walk_fd(child, path)
                finally:
                    os.close(child)
            elif stat.S_ISREG(info.st_mode):
                yield path, "file", info

    def read_link(self, rel: str) -> str:
        with self._parent(rel, create=False) as (fd, name):
            return os.readlink(name, dir_fd=fd)

    def copy_tree(self, source: WorkspaceFiles, source_rel: str, target_rel: str) -> int:
        """Copy what ``source`` holds under ``source_rel`` to ``target_rel`` here: files as
        files (mode kept), links as links (never followed on either side), ``.git``
        skipped. Returns the number of files and links copied."""
        copied = 0
        base = "/".join(check_path(target_rel, self.describe))
        prefix = "/".join(check_path(source_rel, source.describe))
        if base:
            self.mkdir(base)
        for path, kind, info in source.walk(prefix):
            inner = path[len(prefix) + 1:] if prefix else path
            dest = f"{base}/{inner}" if base else inner
            if kind == "dir":
                self.mkdir(dest)
            elif kind == "link":
                self.symlink(dest, source.read_link(path))
                copied += 1
            else:
                self.write_bytes(dest, source.read_bytes(path),
                                 executable=bool(info.st_mode & 0o111))
                copied += 1
        return copied
