"""Builders shared by the gitops unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from envforge.gitops.record import EnvironmentSpec, Isolation
from envforge.gitops.settings import GitOpsSettings
from envforge.gitops.store import EnvironmentStore
from tests.lifecycle_setup import SERVICE, deployment

__all__ = ["DEPLOYMENT", "INGRESS", "NOW", "SERVICE", "offline_store", "spec",
           "write_manifests"]

DEPLOYMENT = deployment("${{ parameters.replicas }}", history=None, ports=True)
INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
spec:
  rules:
    - host: app.example.org
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: app, port: {name: http}}}
"""
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def write_manifests(directory: Path, files: dict[str, str] | None = None) -> Path:
    """A template's manifests directory (Deployment, Service, Ingress unless given)."""
    directory.mkdir(parents=True, exist_ok=True)
    for rel, text in (files if files is not None else {
            "deployment.yaml": DEPLOYMENT, "service.yaml": SERVICE,
            "ingress.yaml": INGRESS}).items():
        (directory / rel).write_text(text)
    return directory


def spec(isolation: Isolation | None = None, **parameters: object) -> EnvironmentSpec:
    return EnvironmentSpec(template="python-service", type="preview", owner="group:team-a",
                           parameters={"replicas": 1, **parameters},
                           isolation=isolation or Isolation())


def offline_store() -> EnvironmentStore:
    """A store used only to build and render records (no repository is touched)."""
    from envforge.git.publishing import GitPublisher
    return EnvironmentStore(GitPublisher("file:///nonexistent.git", "main", Path("/nonexistent")),
                            GitOpsSettings())
