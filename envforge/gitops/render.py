"""Rendering an environment into files of the GitOps repository.

    environments/<name>/environment.yaml      the Environment record
    environments/<name>/manifests/*.yaml      the template's manifests (Jinja2 sandbox,
                                              namespaced, Ingress on the environment's host)
                                              plus the platform's envforge-*.yaml objects
                                              (envforge-domain-<host>.yaml per custom host)
    environments/<name>/host/namespace.yaml   vcluster only: the host namespace it runs in
    argocd/<name>.yaml                        the Argo CD Application(s)

Rendering is pure: it returns file texts and the parsed objects (for validation) and writes
nothing, so a failure leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2 import TemplateError as JinjaTemplateError

from envforge.errors import ManifestValidationError
from envforge.gitops import platform
from envforge.gitops.argocd import environment_applications
from envforge.gitops.domains import domain_ingresses
from envforge.gitops.record import EnvironmentRecord
from envforge.gitops.settings import GitOpsSettings
from envforge.templating.expressions import make_environment

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: Kinds that are not namespaced; templates may not ship them (the platform owns the cluster).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
                  "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}


def environment_dir(name: str) -> str:
    return f"environments/{name}"


def application_file(name: str) -> str:
    return f"argocd/{name}.yaml"


def record_file(name: str) -> str:
    return f"{environment_dir(name)}/environment.yaml"


@dataclass
class RenderedEnvironment:
    """Files (repository path -> text) and every object in them, with the file it is in."""

    name: str
    files: dict[str, str] = field(default_factory=dict)
    objects: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        """What this environment owns in the repository (staged and replaced as a whole)."""
        return [environment_dir(self.name), application_file(self.name)]

    def add(self, path: str, documents: list[dict[str, Any]]) -> None:
        self.files[path] = dump_documents(documents)
        self.objects.extend((path, doc) for doc in documents)


def dump_documents(documents: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False,
                              explicit_start=len(documents) > 1)


def render_environment(
    record: EnvironmentRecord,
    manifests_dir: Path | None,
    repo_url: str,
    branch: str,
    settings: GitOpsSettings,
    context: Mapping[str, Any] | None = None,
) -> RenderedEnvironment:
    """Every file of one environment. ``context`` is what ``${{ }}`` in the template's
    manifests sees (default: ``environment`` and ``parameters`` of the record)."""
    rendered = RenderedEnvironment(record.name)
    base = f"{environment_dir(record.name)}/manifests"
    context = context or {
        "environment": {"name": record.name, "type": record.spec.type,
                        "namespace": record.status.namespace, "host": record.status.host,
                        "url": record.status.url, "owner": record.spec.owner},
        "parameters": record.spec.parameters,
    }
    template_objects = _template_manifests(manifests_dir, record, settings, context, base)
    problems = [p for p in template_objects if isinstance(p, str)]
    if problems:
        raise ManifestValidationError(problems)
    ingresses: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for rel, docs in (t for t in template_objects if isinstance(t, tuple)):
        rendered.add(f"{base}/{rel}", docs)
        ingresses += [d for d in docs if d.get("kind") == "Ingress"]
        services += [d for d in docs if d.get("kind") == "Service"]
    for rel, docs in platform.platform_manifests(record, settings).items():
        rendered.add(f"{base}/{rel}", docs)
    if not ingresses and services:
        ingresses.append(platform.ingress_for_service(services[0], record, settings))
        rendered.add(f"{base}/envforge-ingress.yaml", ingresses[:1])
    # custom hosts route like the main Ingress: the template's first, or envforge-ingress
    main_ingress = ingresses[0] if ingresses else None
    for rel, ingress in domain_ingresses(record, main_ingress, settings).items():
        rendered.add(f"{base}/{rel}", [ingress])
    if record.spec.isolation.mode == "vcluster":
        rendered.add(f"{environment_dir(record.name)}/host/namespace.yaml",
                     [platform.namespace(record)])
    rendered.add(application_file(record.name),
                 environment_applications(record, repo_url, branch, settings))
    rendered.files[record_file(record.name)] = record.to_yaml()
    return rendered


def _template_manifests(
    manifests_dir: Path | None, record: EnvironmentRecord, settings: GitOpsSettings,
    context: Mapping[str, Any], base: str,
) -> list[tuple[str, list[dict[str, Any]]] | str]:
    """(relative file, objects) per template manifest, or a problem text per bad file."""
    if manifests_dir is None:
        return []
    env = make_environment()
    out: list[tuple[str, list[dict[str, Any]]] | str] = []
    for file in sorted(manifests_dir.rglob("*")):
        if not file.is_file() or file.suffix not in MANIFEST_SUFFIXES:
            continue
        rel = file.relative_to(manifests_dir).as_posix()
        where = f"{base}/{rel}"
        if rel.startswith("envforge-"):
            out.append(f"{where}: file names starting with 'envforge-' are the platform's; "
                       "rename the template's file")
            continue
        try:
            text = env.from_string(file.read_text(encoding="utf-8")).render(**context)
            documents = [d for d in yaml.safe_load_all(text) if d is not None]
        except JinjaTemplateError as e:
            line = getattr(e, "lineno", None)
            out.append(f"{where}{f':{line}' if line else ''}: cannot render: {e}")
            continue
        except yaml.YAMLError as e:
            out.append(f"{where}: not valid YAML after rendering: {e}")
            continue
        docs: list[dict[str, Any]] = []
        for i, doc in enumerate(documents):
            problem = _adopt(doc, record, settings)
            if problem:
                out.append(f"{where}: document {i + 1}: {problem}")
            else:
                docs.append(doc)
        out.append((rel, docs))
    return out


def _adopt(doc: Any, record: EnvironmentRecord, settings: GitOpsSettings) -> str | None:
    """Put one template object into the environment: namespace, labels, host. None if fine."""
    if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion"):
        return "not a Kubernetes object (needs apiVersion and kind)"
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        return f"{doc['kind']} has no metadata.name"
    if doc["kind"] in CLUSTER_SCOPED:
        return (f"{doc['kind']} {meta['name']} is cluster-scoped; templates may only ship "
                "namespaced objects (envforge writes the Namespace itself)")
    meta["namespace"] = record.status.namespace
    labels = meta.get("labels")
    meta["labels"] = {**(labels if isinstance(labels, dict) else {}),
                      "envforge.dev/environment": record.name}
    if doc["kind"] == "Ingress":
        platform.point_ingress_at_host(doc, record, settings)
    return None
