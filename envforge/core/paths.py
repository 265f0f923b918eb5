"""Keeping author-supplied paths inside the directory they are meant for."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from envforge.errors import PathEscapeError


def safe_relative(path: str, root_description: str) -> PurePosixPath:
    """``path`` as a relative POSIX path with no ``..``; '.' and '' mean the root itself."""
    text = str(path).replace("\\", "/")
    pure = PurePosixPath(text)
    if pure.is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise PathEscapeError(str(path), root_description, "absolute paths are not allowed")
    if any(part == ".." for part in pure.parts):
        raise PathEscapeError(str(path), root_description, "'..' is not allowed")
    return PurePosixPath(*[p for p in pure.parts if p not in ("", ".")])


def resolve_inside(root: Path, path: str, root_description: str) -> Path:
    """``root / path``, refusing anything that leaves ``root``, through a symlink included."""
    relative = safe_relative(path, root_description)
    candidate = root.joinpath(*relative.parts)
    real_root = root.resolve()
    if not candidate.resolve().is_relative_to(real_root):
        raise PathEscapeError(str(path), root_description, "a symbolic link leads outside")
    return candidate


def assert_no_symlink_out(root: Path, file: Path, root_description: str) -> None:
    """Refuse a file that is, or sits under, a symlink leading outside ``root``."""
    if not file.resolve().is_relative_to(root.resolve()):
        rel = file.relative_to(root) if file.is_relative_to(root) else file
        raise PathEscapeError(str(rel), root_description, "a symbolic link leads outside")
