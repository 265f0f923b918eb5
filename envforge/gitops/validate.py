"""Validation before commit: Kubernetes objects offline against ``kubernetes-validate``'s
bundled (strict) schemas for a configurable Kubernetes version, Argo CD objects against the
model of the fields envforge writes. Every problem names the file, the object and the field;
any problem stops the commit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from kubernetes_validate import utils as kv_utils
from kubernetes_validate.utils import VersionNotSupportedError
from pydantic import ValidationError
from referencing import Registry, Resource

from envforge.errors import ConfigurationError, ManifestValidationError
from envforge.gitops.argocd import ApplicationModel
from envforge.services import ManifestCheck

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


def validate_objects(objects: Iterable[tuple[str, dict[str, Any]]], kubernetes_version: str,
                     server_checks: Sequence[ManifestCheck] = ()) -> None:
    """Raise ManifestValidationError listing every problem in ``objects`` (file, object);
    ``server_checks`` (checks against a live API server, handed down in the services: the
    cluster area's server-side dry run) run once the offline ones pass."""
    objects = list(objects)
    problems: list[str] = []
    for file, doc in objects:
        problems.extend(f"{file}: {_object_name(doc)}: {p}"
                        for p in object_problems(doc, kubernetes_version))
    for check in [] if problems else server_checks:
        problems.extend(check(objects))
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
    validator = _validator(str(doc.get("kind", "")), api_version, kubernetes_version)
    if validator is None:
        return [f"field kind: no {doc.get('kind')} in {api_version} for Kubernetes "
                f"{kubernetes_version} (check apiVersion and kind)"]
    return [f"field {'.'.join(str(p) for p in e.path) or '(object)'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))]


def _schema_dir(kubernetes_version: str) -> str:
    """kubernetes-validate's strict schema directory for the newest version not newer than
    the one asked for (what ``kubernetes_validate.validate`` picks)."""
    wanted = _version_key(kubernetes_version)
    known = [v for v in _all_versions() if _version_key(v) <= wanted]
    if not known or wanted > _version_key(_all_versions()[-1]):
        raise ConfigurationError(
            f"Kubernetes version {kubernetes_version!r} is not known to kubernetes-validate "
            f"(it knows {_all_versions()[0]} to {_all_versions()[-1]}); set "
            "ENVFORGE_KUBERNETES_VERSION to a supported one, e.g. 1.31")
    return f"kubernetes-json-schema/v{known[-1]}-local-strict"


@lru_cache(maxsize=1)
def _all_versions() -> list[str]:
    return list(kv_utils.all_versions())


def _version_key(version: str) -> tuple[int, ...]:
    digits = re.findall(r"\d+", version.lstrip("v"))[:2]
    return tuple(int(d) for d in digits) if digits else (0,)


@lru_cache(maxsize=4)
def _definitions(schema_dir: str) -> Any:
    return kv_utils.schema_contents(f"{schema_dir}/_definitions.json", schema_dir)


@lru_cache(maxsize=256)
def _validator(kind: str, api_version: str, kubernetes_version: str) -> Any:
    """A compiled validator per kind and version. kubernetes_validate.validate re-reads the
    large definitions file on every call; caching makes validation 10-30x cheaper."""
    schema_dir = _schema_dir(kubernetes_version)
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv_utils.schema_contents(f"{schema_dir}/{kind.lower()}-{api}.json", schema_dir)
    except (FileNotFoundError, VersionNotSupportedError):
        return None
    registry: Registry[Any] = Registry()
    registry = Resource.from_contents(schema) @ registry
    registry = Resource.from_contents(_definitions(schema_dir)) @ registry
    return Draft202012Validator(schema, registry=registry)


def _argocd_problems(doc: dict[str, Any]) -> list[str]:
    if doc.get("kind") != "Application":
        return [f"field kind: envforge writes only Argo CD Applications, not {doc.get('kind')}"]
    try:
        ApplicationModel.model_validate(doc)
    except ValidationError as e:
        return [f"field {'.'.join(str(p) for p in err['loc']) or '(object)'}: {err['msg']}"
                for err in e.errors()]
    return []
