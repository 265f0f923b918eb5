"""``--keep-files DIR``: a dry run's workspace, as it is when the run ends, written to DIR (what
Backstage's dry run returns as its directory contents), and ``--catalog-root DIR``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from envforge.capabilities.files import WorkspaceFiles
from envforge.errors import ConfigurationError, StepFailedError
from envforge.run.runner import StepReport, TemplateRun
from envforge.services import Services
from envforge.settings import environ_overrides, load_settings
from envforge.templating.model import Template


def catalog_roots(roots: Sequence[str]) -> AbstractContextManager[None]:
    """Within the block, ``roots`` are catalog roots that relative ``../`` fetch URLs may reach
    (in front of ENVFORGE_TEMPLATES_PATH); ConfigurationError when one is not a folder."""
    paths = [Path(r) for r in roots]
    for path in paths:
        if not path.is_dir():
            raise ConfigurationError(f"--catalog-root {path}: no such folder; name the folder "
                                     "that holds the collection (its template folders and "
                                     "shared skeletons)")
    return templates_path_in_front([str(p.resolve()) for p in paths])


def templates_path_in_front(roots: Sequence[str]) -> AbstractContextManager[None]:
    """Within the block, the settings (``load_settings()``, and the services built there) see
    ``roots`` in front of the ENVFORGE_TEMPLATES_PATH that was set: for this command only,
    passed as a settings override, the process environment untouched."""
    if not roots:
        return nullcontext()
    current = load_settings().paths
    rest = ([str(p) for p in current.templates_path]
            if "templates_path" in current.model_fields_set else [])
    return environ_overrides({"ENVFORGE_TEMPLATES_PATH": os.pathsep.join([*roots, *rest])})


def empty_target(target: Path) -> Path:
    """``target`` ready to receive files: created, or an existing empty folder."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigurationError(f"--keep-files {target}: exists and is not an empty folder; "
                                 "name a new or empty folder")
    target.mkdir(parents=True, exist_ok=True)
    return target


def copy_workspace(workspace: Path, target: Path) -> list[str]:
    """Every file and folder of the workspace into ``target`` through the workspace file API
    on both sides (links copied as links, never followed; nothing written through a link that
    appears in ``target`` meanwhile); the files and links written, sorted."""
    source, into = WorkspaceFiles(workspace, describe="workspace"), WorkspaceFiles(
        target, describe=f"--keep-files {target}")
    into.copy_tree(source, "", "")
    return sorted(path for path, kind, _ in into.walk() if kind != "dir")


def dry_run_keeping_files(template: Template, parameters: Mapping[str, Any], target: Path,
                          services: Services | None = None, render_only: bool = False,
                          environment: Mapping[str, Any] | None = None,
                          listener: Callable[[StepReport], None] | None = None,
                          validate: bool = True) -> tuple[dict[str, Any], list[str]]:
    """Dry-run ``template`` in this process and write its final workspace to ``target``;
    the files are written even when a step fails (then StepFailedError is raised after)."""
    empty_target(target)
    run = TemplateRun(template, dict(parameters), dry_run=True, render_only=render_only,
                      environment=dict(environment or {}), services=services,
                      validate=validate)
    failure: StepFailedError | None = None
    result: dict[str, Any] = {}
    try:
        try:
            result = run.run(listener=listener).to_dict()
        except StepFailedError as e:
            failure = e
        files = copy_workspace(run.workspace, target)
    finally:
        run.close()
    if failure is not None:
        raise failure
    return result, files
