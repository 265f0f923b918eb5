"""YAML from authors and callers, loaded within limits: size, aliases, expansion, depth.

PyYAML's SafeLoader builds objects, never runs code, but an alias bomb (``b: [*a, *a, ...]``
nine levels deep) expands to a billion nodes as soon as anything walks the result, and a
50 MB file takes minutes to parse. :func:`load_yaml` refuses both before construction: the
file size is checked before reading, then the composed node graph is measured with every alias
counted at each use (memoised, so measuring a bomb is cheap).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from envforge.templating.budget import Budget, load_budget


class YamlLimitError(ValueError):
    """The document breaks a limit; the message says which and the setting that raises it."""


def read_limited(path: Path, max_bytes: int, setting: str) -> str:
    """The file's text, refused before reading when it is larger than ``max_bytes``."""
    size = path.stat().st_size
    if size > max_bytes:
        raise YamlLimitError(f"{size:,} bytes is larger than the limit of {max_bytes:,} "
                             f"({setting})")
    return path.read_text(encoding="utf-8")


class _DepthLimitedLoader(yaml.SafeLoader):
    """Composes nodes no deeper than ``max_depth`` (PyYAML's composer recurses per level)."""

    max_depth = 100

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise YamlLimitError(f"nested deeper than {self.max_depth} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Core12Loader(_DepthLimitedLoader):
    """YAML 1.2's core schema, as Backstage (the ``yaml`` package) reads a template: only
    ``true``/``false`` are booleans (``no``, ``on``, ``y`` are strings), ``017`` is 17, no
    sexagesimal numbers (``1:20`` is a string), no timestamps."""

    yaml_implicit_resolvers: dict[Any, Any] = {}


_CORE12_RESOLVERS = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
     list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", list("-+.0123456789")),
]
for _tag, _pattern, _first in _CORE12_RESOLVERS:
    _Core12Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


class _Core12Constructor(yaml.SafeLoader):
    """Numbers as YAML 1.2 writes them (``017`` decimal, ``0o17`` octal)."""

    def construct_yaml_int(self, node: yaml.Node) -> int:
        text = str(self.construct_scalar(node))  # type: ignore[arg-type]
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)


_Core12Constructor.add_constructor("tag:yaml.org,2002:int",
                                   _Core12Constructor.construct_yaml_int)


def compose_limited(text: str, budget: Budget | None = None,
                    core12: bool = False) -> yaml.Node | None:
    """The document's node graph, refused when it expands past the budget; ``core12`` reads
    plain scalars with YAML 1.2's core schema (templates, as Backstage reads them)."""
    budget = budget or load_budget()
    loader = (_Core12Loader if core12 else _DepthLimitedLoader)(text)
    loader.max_depth = budget.yaml_max_depth
    try:
        node = loader.get_single_node()
    except RecursionError:
        raise YamlLimitError(f"nested deeper than {budget.yaml_max_depth} levels") from None
    finally:
        loader.dispose()
    if node is not None:
        _measure(node, budget)
    return node


def construct(node: yaml.Node | None, core12: bool = False) -> Any:
    if node is None:
        return None
    loader = (_Core12Constructor if core12 else yaml.SafeLoader)("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_yaml(text: str, budget: Budget | None = None, core12: bool = False) -> Any:
    """``yaml.safe_load`` within the budget's limits (raises YamlLimitError or YAMLError)."""
    return construct(compose_limited(text, budget, core12), core12)


def _measure(root: yaml.Node, budget: Budget) -> None:
    """Expanded node count (aliases at every use) and depth, without expanding anything."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    uses: dict[int, int] = {}
    aliases = 0

    # iterative post-order walk, so a deep document cannot exhaust Python's stack
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        uses[key] = uses.get(key, 0) + (0 if done else 1)
        if not done and uses[key] > 1:
            aliases += 1  # a node reached again is an alias (or a merge) use
            if aliases > budget.yaml_max_aliases:
                raise YamlLimitError(f"more than {budget.yaml_max_aliases} alias uses")
        if key in sizes:
            continue
        children = _children(node)
        if done or not children:
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            depths[key] = 1 + max((depths[id(c)] for c in children), default=0)
            if sizes[key] > budget.yaml_max_nodes:
                raise YamlLimitError(f"expands to more than {budget.yaml_max_nodes:,} nodes "
                                     "(aliases count at every use)")
            if depths[key] > budget.yaml_max_depth:
                raise YamlLimitError(f"nested deeper than {budget.yaml_max_depth} levels")
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
