"""Builders shared by the fetch action tests: a step context over ``tmp_path`` (template in
``tpl/``, workspace in ``ws/``) and a skeleton written under the template."""

from __future__ import annotations

from pathlib import Path

from envforge.actions.base import ActionContext
from envforge.capabilities import Capabilities


def fetch_context(tmp_path: Path) -> ActionContext:
    """A fetch step's context: template folder ``tmp_path/tpl``, workspace ``tmp_path/ws``."""
    (tmp_path / "ws").mkdir(exist_ok=True)
    return ActionContext(run_id="r", step_id="fetch", template_name="t",
                         template_dir=tmp_path / "tpl", workspace=tmp_path / "ws")


def write_skeleton(tmp_path: Path, files: dict[str, str]) -> None:
    """``files`` (relative path -> content) under the template's ``skeleton/`` folder."""
    for rel, content in files.items():
        path = tmp_path / "tpl" / "skeleton" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def context_with_settings(tmp_path: Path, cache: Path, step_id: str = "fetch",
                          **settings: str) -> ActionContext:
    """A step context (template ``tmp_path/tpl``, workspace ``tmp_path/ws``) whose capabilities
    come from ``settings`` (ENVFORGE_* names without the prefix) as the composition root
    builds them, their cache in ``cache``."""
    (tmp_path / "ws").mkdir(parents=True, exist_ok=True)
    (tmp_path / "tpl").mkdir(exist_ok=True)
    environ = {f"ENVFORGE_{k}": v for k, v in settings.items()}
    return ActionContext(run_id="r", step_id=step_id, template_name="t",
                         template_dir=tmp_path / "tpl", workspace=tmp_path / "ws",
                         capabilities=Capabilities.from_environ(environ, cache))
