"""Loading template.yaml files, with line numbers in every format error, and finding templates
by name in the template directories."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from envforge.core.config import load_settings
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
        node = compose_limited(text, budget, core12=True)
        data = construct(node, core12=True)
        data = resolve_placeholders(data, file.parent.resolve(), str(file))
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
    _rename_repeated_step_ids(data)
    try:
        template = Template.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = tuple(first["loc"])
        problems = [f"{_dotted(err['loc'])}: {_explain(err)}" for err in e.errors()]
        raise TemplateFormatError(str(file), "; ".join(problems), _line_of(lines, loc)) from None
    template.directory = file.parent.resolve()
    return template


_PLACEHOLDERS = ("$text", "$json", "$yaml")


def catalog_root(template_dir: Path) -> Path:
    """What a template's relative paths may reach: the enclosing Git working copy, else the
    ENVFORGE_TEMPLATES_PATH folder (``--catalog-root``) that holds it, else its own folder."""
    here = template_dir.resolve()
    for parent in [here, *here.parents]:
        if (parent / ".git").exists():
            return parent
    roots = [p.resolve() for p in load_settings().templates_path
             if p.is_dir() and here.is_relative_to(p.resolve())]
    return max(roots, key=lambda p: len(p.parts), default=here)


def resolve_placeholders(data: Any, base: Path, where: str) -> Any:
    """Backstage's placeholders in the template entity: a mapping that is only
    ``{$text: path}``, ``{$json: path}`` or ``{$yaml: path}`` is replaced by that file's text,
    JSON or YAML. Paths are relative to the template file and stay inside its repository or
    catalog root (remote URLs are not fetched here)."""
    if isinstance(data, list):
        return [resolve_placeholders(v, base, where) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) == 1:
        key, value = next(iter(data.items()))
        if key in _PLACEHOLDERS:
            return _placeholder(key, value, base, where)
    return {k: resolve_placeholders(v, base, where) for k, v in data.items()}


def _placeholder(kind: str, target: Any, base: Path, where: str) -> Any:
    if not isinstance(target, str) or not target or "://" in target:
        raise TemplateFormatError(where, f"{kind}: {target!r} must be a path relative to the "
                                  "template file (remote placeholders are not fetched)")
    root = catalog_root(base)
    path = (base / target).resolve()
    if not path.is_relative_to(root):
        raise TemplateFormatError(where, f"{kind}: {target!r} leads outside {root}, the "
                                  "repository or catalog root that holds the template")
    if not path.is_file():
        raise TemplateFormatError(where, f"{kind}: no such file {target!r} next to the template")
    budget = load_budget()
    try:
        text = read_limited(path, budget.template_max_bytes, "ENVFORGE_TEMPLATE_MAX_BYTES")
        if kind == "$text":
            return text
        if kind == "$json":
            return json.loads(text)
        return construct(compose_limited(text, budget, core12=True), core12=True)
    except (YamlLimitError, ValueError, yaml.YAMLError) as e:
        problem = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TemplateFormatError(where, f"{kind}: {target!r} could not be read: "
                                  f"{problem}") from None


def _rename_repeated_step_ids(data: Any) -> None:
    """Backstage runs steps that share an id, ``steps.<id>`` being the latest one's output;
    so does envforge: the earlier ones are named ``<id>#1``, ``<id>#2``... and the steps in
    between read them under that name."""
    spec = data.get("spec") if isinstance(data, dict) else None
    steps = spec.get("steps") if isinstance(spec, dict) else None
    if not isinstance(steps, list):
        return
    ids = [s.get("id") if isinstance(s, dict) else None for s in steps]
    for i, sid in enumerate(ids):
        if not isinstance(sid, str) or sid not in ids[i + 1:]:
            continue
        new_id = f"{sid}#{ids[:i].count(sid) + 1}"
        steps[i] = {**steps[i], "id": new_id}
        until = ids.index(sid, i + 1)
        for j in range(i + 1, until + 1):
            if isinstance(steps[j], dict):
                steps[j] = {k: (_retarget(v, sid, new_id) if k in ("input", "if", "each")
                                else v) for k, v in steps[j].items()}


def _retarget(value: Any, old: str, new: str) -> Any:
    """``steps.<old>`` / ``steps['<old>']`` in every string of ``value`` as ``steps['<new>']``."""
    if isinstance(value, str):
        pattern = (r"steps\s*(?:\.\s*" + re.escape(old) + r"\b(?![-\w])|\[\s*(['\"])"
                   + re.escape(old) + r"\1\s*\])")
        return re.sub(pattern, f"steps['{new}']", value)
    if isinstance(value, list):
        return [_retarget(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _retarget(v, old, new) for k, v in value.items()}
    return value


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
