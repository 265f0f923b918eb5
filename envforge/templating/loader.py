"""Loading template.yaml files, with line numbers in every format error, and finding templates
by name in the template directories."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from envforge.errors import TemplateFormatError, TemplateNotFoundError
from envforge.templating.budget import load_budget
from envforge.templating.model import Template
from envforge.templating.yamlsafe import YamlLimitError, compose_limited, construct, read_limited

TEMPLATE_FILE = "template.yaml"
LinePath = tuple[str | int, ...]


def load_template(path: Path | str) -> Template:
    """Load and check the shape of one template (a directory or its template.yaml)."""
    path = Path(path)
    file = path / TEMPLATE_FILE if path.is_dir() else path
    if not file.is_file():
        raise TemplateFormatError(str(file), "no such file; a template is a directory "
                                  f"holding {TEMPLATE_FILE} (and usually skeleton/)")
    budget = load_budget()
    try:
        text = read_limited(file, budget.template_max_bytes, "ENVFORGE_TEMPLATE_MAX_BYTES")
        node = compose_limited(text, budget)
        data = construct(node)
    except YamlLimitError as e:
        raise TemplateFormatError(str(file), f"refused: {e}") from None
    except UnicodeDecodeError:
        raise TemplateFormatError(str(file), "is not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = (getattr(e, "problem", None) or str(e) or type(e).__name__).splitlines()[0]
        raise TemplateFormatError(str(file), f"not valid YAML: {problem}", line) from None
    if not isinstance(data, dict):
        raise TemplateFormatError(str(file), "must be a YAML mapping with apiVersion, kind, "
                                  "metadata and spec", 1)
    lines = _line_index(node)
    try:
        template = Template.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = tuple(first["loc"])
        problems = [f"{_dotted(err['loc'])}: {_explain(err)}" for err in e.errors()]
        raise TemplateFormatError(str(file), "; ".join(problems), _line_of(lines, loc)) from None
    template.directory = file.parent.resolve()
    return template


def _explain(error: Any) -> str:
    if error["type"] == "literal_error" and error["loc"] == ("apiVersion",):
        return f"must be 'scaffolder.backstage.io/v1beta3' (got {error.get('input')!r})"
    return str(error["msg"])


def _dotted(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_index(node: yaml.Node | None) -> dict[LinePath, int]:
    """Map every key path of the document to its 1-based line."""
    index: dict[LinePath, int] = {}

    def walk(n: yaml.Node, path: LinePath) -> None:
        index[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                child = (*path, str(key.value))
                index[child] = key.start_mark.line + 1
                walk(value, child)
                index[child] = key.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return index


def _line_of(index: dict[LinePath, int], loc: Sequence[Any]) -> int | None:
    loc = tuple("if" if part == "if_" else part for part in loc)
    for end in range(len(loc), -1, -1):
        if loc[:end] in index:
            return index[loc[:end]]
    return None


class TemplateCatalog:
    """Templates found in a list of directories, each holding <name>/template.yaml."""

    def __init__(self, search_paths: Sequence[Path]) -> None:
        self.search_paths = [Path(p) for p in search_paths]

    def template_dirs(self) -> list[Path]:
        found = []
        for root in self.search_paths:
            if root.is_dir():
                found += sorted(p.parent for p in root.glob(f"*/{TEMPLATE_FILE}"))
        return found

    def names(self) -> list[str]:
        return [d.name for d in self.template_dirs()]

    def list(self) -> list[Template]:
        """Every template; a broken one raises (run `envforge templates validate`)."""
        return [load_template(d) for d in self.template_dirs()]

    def resolve(self, name_or_path: str) -> Path:
        """The directory of a template given by name, or by a path to its directory/file."""
        candidate = Path(name_or_path)
        looks_like_path = os.sep in name_or_path or name_or_path.startswith(".")
        is_template = candidate.is_file() or (candidate / TEMPLATE_FILE).is_file()
        if (candidate.exists() or looks_like_path) and is_template:
            return candidate.parent if candidate.is_file() else candidate
        for d in self.template_dirs():
            if d.name == name_or_path:
                return d
        raise TemplateNotFoundError(
            name_or_path, self.names(), [str(p) for p in self.search_paths]
        )

    def load(self, name_or_path: str) -> Template:
        return load_template(self.resolve(name_or_path))
