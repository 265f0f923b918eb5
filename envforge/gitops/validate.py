"""Validation before commit: Kubernetes objects offline with ``kubernetes-validate`` against a
configurable Kubernetes version, Argo CD objects against the model of the fields envforge
writes. Every problem names the file, the object and the field; any problem stops the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import kubernetes_validate
from kubernetes_validate.utils import VersionNotSupportedError
from pydantic import ValidationError

from envforge.errors import ConfigurationError, ManifestValidationError
from envforge.gitops.argocd import ApplicationModel

log = logging.getLogger("envforge.gitops.validate")


def _object_name(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    name = meta.get("name", "?")
    ns = meta.get("namespace")
    return f"{doc.get('kind', '?')} {ns + '/' if ns else ''}{name}"


def _is_core_api(api_version: str) -> bool:
    """Groups Kubernetes itself serves (kubernetes-validate knows them); others are CRDs."""
    group = api_version.rpartition("/")[0]
    return "/" not in api_version or "." not in group or group.endswith(".k8s.io")


def validate_objects(objects: Iterable[tuple[str, dict[str, Any]]],
                     kubernetes_version: str) -> None:
    """Raise ManifestValidationError listing every problem in ``objects`` (file, object)."""
    problems: list[str] = []
    for file, doc in objects:
        problems.extend(f"{file}: {_object_name(doc)}: {p}"
                        for p in object_problems(doc, kubernetes_version))
    if problems:
        raise ManifestValidationError(problems)


def object_problems(doc: dict[str, Any], kubernetes_version: str) -> list[str]:
    """What is wrong with one object, each as 'field <path>: <message>'."""
    api_version = str(doc.get("apiVersion", ""))
    if api_version.startswith("argoproj.io/"):
        return _argocd_problems(doc)
    if not _is_core_api(api_version):
        log.info("%s %s: no offline schema for custom resources; not validated",
                 api_version, doc.get("kind"))
        return []
    try:
        kubernetes_validate.validate(doc, kubernetes_version, strict=True)
    except VersionNotSupportedError as e:
        raise ConfigurationError(
            f"Kubernetes version {kubernetes_version!r} is not known to kubernetes-validate "
            f"({e}); set ENVFORGE_KUBERNETES_VERSION to a supported one, e.g. 1.31") from e
    except kubernetes_validate.SchemaNotFoundError:
        return [f"field kind: no {doc.get('kind')} in {api_version} for Kubernetes "
                f"{kubernetes_version} (check apiVersion and kind)"]
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "(object)"
        return [f"field {path}: {e.message}"]
    return []


def _argocd_problems(doc: dict[str, Any]) -> list[str]:
    if doc.get("kind") != "Application":
        return [f"field kind: envforge writes only Argo CD Applications, not {doc.get('kind')}"]
    try:
        ApplicationModel.model_validate(doc)
    except ValidationError as e:
        return [f"field {'.'.join(str(p) for p in err['loc']) or '(object)'}: {err['msg']}"
                for err in e.errors()]
    return []
