"""Set-up shared by the environment lifecycle tests (create, upgrade, a killed create) and the
gitops unit tests: the manifests their test templates render, a templates folder the CLI finds,
the session's PostgreSQL for db:seed, and reading what the embedded GitOps remote holds.

The CLI is a composition root: it builds its services from the settings of its process, so a
test that drives ``envforge.cli.main`` names its templates folder and database server there
(``use_templates``, ``use_postgres``); everything below the CLI gets them handed down."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from envforge.core.config import load_settings
from tests.helpers import git, write_template

if TYPE_CHECKING:
    from envforge.db.connection import ServerAddress

PORTS = "ports: [{name: http, containerPort: 8080}]"
SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"""


def deployment(replicas: str = "1", *, image: str = "registry.local/app:latest",
               history: int | None = 3, ports: bool = False,
               env: Mapping[str, str] | None = None) -> str:
    """A one-container Deployment ``app`` (labels app=web): ``replicas`` and ``image`` as
    given (an expression or a value), ``revisionHistoryLimit: history`` unless None (the field
    upgrade tests bump), the http port if ``ports``, and ``env`` as name/value pairs."""
    lines = ["apiVersion: apps/v1", "kind: Deployment", "metadata:", "  name: app", "spec:",
             f"  replicas: {replicas}"]
    if history is not None:
        lines.append(f"  revisionHistoryLimit: {history}")
    lines += ["  selector:", "    matchLabels: {app: web}", "  template:", "    metadata:",
              "      labels: {app: web}", "    spec:", "      containers:",
              "        - name: app", f"          image: {image}"]
    if ports:
        lines.append(f"          {PORTS}")
    if env:
        lines.append("          env:")
        for name, value in env.items():
            lines += [f"            - name: {name}", f"              value: {value}"]
    return "\n".join(lines) + "\n"


def use_templates(root: Path, monkeypatch: pytest.MonkeyPatch,
                  templates: Mapping[str, tuple[str, Mapping[str, str]]]) -> Path:
    """Write each template (name -> (template.yaml, files by path)) under ``root`` and make it
    the CLI's templates folder for this test; returns ``root``."""
    for name, (template_yaml, files) in templates.items():
        write_template(root / name, template_yaml, dict(files))
    monkeypatch.setenv("ENVFORGE_TEMPLATES_PATH", str(root))
    return root


def use_postgres(monkeypatch: pytest.MonkeyPatch, server: ServerAddress) -> None:
    """The session's PostgreSQL as the server db:seed creates databases on (libpq's variables,
    which the database connection reads when no block is named)."""
    monkeypatch.setenv("PGHOST", server.host)
    monkeypatch.setenv("PGPORT", str(server.port))
    monkeypatch.setenv("PGUSER", server.user)


def bump_template(directory: Path, old: str, new: str, version: str = "1.1.0") -> None:
    """A new version of the template in ``directory``: ``old`` becomes ``new`` in its
    Deployment and its declared version 1.0.0 becomes ``version``."""
    manifest = directory / "skeleton/manifests/deployment.yaml"
    manifest.write_text(manifest.read_text().replace(old, new))
    spec = directory / "template.yaml"
    spec.write_text(spec.read_text().replace('version: "1.0.0"', f'version: "{version}"'))


def embedded_remote() -> Path:
    """The bare repository the CLI publishes to when no GitOps URL is set (this test's home)."""
    return load_settings().embedded_gitops_repo


def show(name: str, path: str = "environment.yaml", revision: str = "main") -> str:
    """A file of environment ``name`` at ``revision`` of the embedded remote."""
    return git("--git-dir", str(embedded_remote()), "show",
               f"{revision}:environments/{name}/{path}")


def manifest_files(name: str) -> list[str]:
    """The paths (from the repository root) of environment ``name``'s manifests on main."""
    return git("--git-dir", str(embedded_remote()), "ls-tree", "-r", "--name-only", "main",
               f"environments/{name}/manifests/").split()
