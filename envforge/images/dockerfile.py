"""Which Dockerfile builds an application: the repository's own, or one rendered for its stack.

The repository's Dockerfile wins when it has one (``Dockerfile`` or ``Containerfile`` at the
context root, or the path given). Otherwise a stack template renders one: each stack is a
directory ``templates/stacks/<stack>/`` with ``Dockerfile.j2`` and ``stack.yaml`` (the files
that detect it, its priority, default variables such as ``base_image``). Templates render in a
sandbox with ``StrictUndefined``; they may call ``has(path)`` to look at the source's files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from envforge.core.config import PROJECT_ROOT
from envforge.core.paths import safe_relative
from envforge.errors import DockerfileError, UnknownStackError

STACKS_DIR = PROJECT_ROOT / "templates" / "stacks"
OWN_DOCKERFILES = ("Dockerfile", "Containerfile")


class SourceView(Protocol):
    """Read-only access to the application's files (a Git commit or a directory)."""

    def is_file(self, path: str) -> bool: ...

    def read_text(self, path: str) -> str: ...


class DirectoryView:
    """A :class:`SourceView` over a directory on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def is_file(self, path: str) -> bool:
        return (self.root / path).is_file()

    def read_text(self, path: str) -> str:
        return (self.root / path).read_text(encoding="utf-8", errors="replace")


@dataclass(frozen=True)
class Stack:
    name: str
    description: str
    detect: tuple[str, ...]
    priority: int
    defaults: Mapping[str, Any]


@dataclass(frozen=True)
class DockerfilePlan:
    """The Dockerfile to build with and where it came from."""

    content: str
    origin: str  # "repository" or "stack"
    path: str | None = None  # in the repository, for origin "repository"
    stack: str | None = None  # for origin "stack"

    def describe(self) -> str:
        return f"{self.path} from the repository" if self.origin == "repository" \
            else f"generated from the {self.stack!r} stack template"


@lru_cache(maxsize=8)
def load_stacks(stacks_dir: Path = STACKS_DIR) -> dict[str, Stack]:
    """Every stack under ``stacks_dir`` (a directory with Dockerfile.j2 and stack.yaml)."""
    stacks: dict[str, Stack] = {}
    for template in sorted(stacks_dir.glob("*/Dockerfile.j2")):
        meta_file = template.parent / "stack.yaml"
        try:
            meta = yaml.safe_load(meta_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise DockerfileError(f"{meta_file}: cannot read the stack definition: {e}") from e
        stacks[template.parent.name] = Stack(
            name=template.parent.name,
            description=str(meta.get("description", "")),
            detect=tuple(meta.get("detect") or ()),
            priority=int(meta.get("priority", 100)),
            defaults=dict(meta.get("defaults") or {}),
        )
    return stacks


def _in_context(context: str, path: str) -> str:
    return str(PurePosixPath(context) / path) if context not in ("", ".") else path


def detect_stack(view: SourceView, context: str = ".",
                 stacks_dir: Path = STACKS_DIR) -> str | None:
    """The stack whose marker files the context has (lowest priority number wins)."""
    for stack in sorted(load_stacks(stacks_dir).values(), key=lambda s: (s.priority, s.name)):
        if any(view.is_file(_in_context(context, marker)) for marker in stack.detect):
            return stack.name
    return None


def check_stack_name(stack: str, stacks_dir: Path = STACKS_DIR) -> None:
    """Raise UnknownStackError when no template exists for ``stack``."""
    stacks = load_stacks(stacks_dir)
    if stack not in stacks:
        raise UnknownStackError(
            f"unknown stack {stack!r}: stack templates are {', '.join(sorted(stacks))} "
            f"(in {stacks_dir}); name one of them or add templates/stacks/{stack}/")


def render_stack(stack: str, view: SourceView, context: str = ".",
                 variables: Mapping[str, Any] | None = None,
                 stacks_dir: Path = STACKS_DIR) -> str:
    """Render the stack's Dockerfile.j2 with its defaults overridden by ``variables``."""
    check_stack_name(stack, stacks_dir)
    definition = load_stacks(stacks_dir)[stack]
    env = SandboxedEnvironment(loader=jinja2.FileSystemLoader(str(stacks_dir)),
                               undefined=jinja2.StrictUndefined, trim_blocks=True,
                               lstrip_blocks=True, keep_trailing_newline=True)
    values = {**definition.defaults, **(variables or {})}
    values["has"] = lambda path: view.is_file(_in_context(context, str(path)))
    name = f"{stack}/Dockerfile.j2"
    try:
        return env.get_template(name).render(values)
    except jinja2.TemplateSyntaxError as e:
        raise DockerfileError(f"{stacks_dir / name}:{e.lineno}: {e.message}") from e
    except jinja2.TemplateError as e:
        raise DockerfileError(
            f"{stacks_dir / name}: cannot render it: {e} (set the missing value in "
            "stackOptions)") from e


def plan_dockerfile(
    view: SourceView,
    context: str = ".",
    dockerfile: str | None = None,
    stack: str | None = None,
    variables: Mapping[str, Any] | None = None,
    stacks_dir: Path = STACKS_DIR,
) -> DockerfilePlan:
    """Decide the Dockerfile: the given path, the repository's own, else the stack's."""
    context = str(safe_relative(context, "repository")) or "."
    if stack is not None:
        check_stack_name(stack, stacks_dir)  # a typo fails even when a Dockerfile exists
    if dockerfile is not None:
        path = str(safe_relative(dockerfile, "repository"))
        if not view.is_file(path):
            raise DockerfileError(
                f"no Dockerfile at {path!r} in the repository: fix the dockerfile path, or "
                "leave it empty to use the repository's own Dockerfile or a stack template")
        return DockerfilePlan(content=view.read_text(path), origin="repository", path=path)
    for candidate in OWN_DOCKERFILES:
        path = _in_context(context, candidate)
        if view.is_file(path):
            return DockerfilePlan(content=view.read_text(path), origin="repository", path=path)
    chosen = stack or detect_stack(view, context, stacks_dir)
    if chosen is None:
        stacks = load_stacks(stacks_dir)
        markers = "; ".join(f"{s.name}: {', '.join(s.detect)}" for s in stacks.values())
        raise UnknownStackError(
            f"the repository has no Dockerfile in {context!r} and its stack cannot be "
            f"detected (looked for {markers}); add a Dockerfile or name the stack")
    content = render_stack(chosen, view, context, variables, stacks_dir)
    return DockerfilePlan(content=content, origin="stack", stack=chosen)
