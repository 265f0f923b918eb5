"""Manifests that go to Git: a ConfigMap of the non-secret variables, and (with
``external-secrets`` delivery) an ExternalSecret telling the External Secrets Operator's Vault
provider which Vault fields make up the environment's Secret. Neither ever holds a value:
a secret variable asked into the ConfigMap is refused, and every file is checked against the
registered values before it is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from envforge.actions.ownership import environment_labels
from envforge.errors import SecretReferenceError
from envforge.secrets.redaction import SecretRedactor, default_redactor
from envforge.secrets.references import SecretReference
from envforge.secrets.variables import ResolvedVariable

ESO_API_VERSION = "external-secrets.io/v1beta1"


def render_config_map(name: str, namespace: str, environment: str,
                      variables: Mapping[str, ResolvedVariable]) -> dict[str, Any]:
    """A ConfigMap of the given variables; a secret one among them is refused by name."""
    secret = sorted(n for n, v in variables.items() if v.secret)
    if secret:
        raise SecretReferenceError(
            f"ConfigMap {namespace}/{name} is committed to Git, but variable(s) "
            f"{', '.join(secret)} are secret; they are delivered in the Secret instead"
        )
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": environment_labels(environment)},
        "data": {n: v.literal_value() for n, v in sorted(variables.items())},
    }


def render_external_secret(
    name: str, namespace: str, environment: str, variables: Mapping[str, ResolvedVariable],
    store_name: str, store_kind: str = "ClusterSecretStore", refresh_interval: str = "1h",
) -> dict[str, Any]:
    """An ExternalSecret producing Secret ``name`` from Vault for the given secret variables.

    Every distinct Vault field becomes one ``data`` entry (keyed by the variable that is exactly
    that reference, else ``_ref_N``); variables that mix text and secrets become Go templates in
    ``target.template``. The SecretStore must point at Vault KV v2 without a ``path``: keys
    here carry their mount (``kv/app/db``).
    """
    not_from_vault = sorted(n for n, v in variables.items() if not v.from_vault_only)
    if not_from_vault:
        raise SecretReferenceError(
            f"ExternalSecret {namespace}/{name}: variable(s) {', '.join(not_from_vault)} are "
            "not (only) Vault references and cannot be produced by the External Secrets "
            "Operator; deliver them with kubernetes:secret"
        )
    keys: dict[SecretReference, str] = {}
    for var_name, var in sorted(variables.items()):
        if len(var.parts) == 1:
            keys.setdefault(var.references[0], var_name)
    for var in variables.values():
        for ref in var.references:
            keys.setdefault(ref, f"_ref_{len(keys)}")
    data = []
    for ref, key in sorted(keys.items(), key=lambda item: item[1]):
        remote: dict[str, Any] = {"key": f"{ref.mount}/{ref.path}", "property": ref.key}
        if ref.version is not None:
            remote["version"] = str(ref.version)
        data.append({"secretKey": key, "remoteRef": remote})
    target: dict[str, Any] = {"name": name, "creationPolicy": "Owner"}
    if any(len(v.parts) > 1 or keys[v.references[0]] != n for n, v in variables.items()):
        target["template"] = {
            "engineVersion": "v2",
            "metadata": {"labels": environment_labels(environment)},
            "data": {n: _go_template(v, keys) for n, v in sorted(variables.items())},
        }
    return {
        "apiVersion": ESO_API_VERSION, "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": environment_labels(environment)},
        "spec": {"refreshInterval": refresh_interval,
                 "secretStoreRef": {"name": store_name, "kind": store_kind},
                 "target": target, "data": data},
    }


def _go_template(variable: ResolvedVariable, keys: Mapping[SecretReference, str]) -> str:
    out = []
    for part in variable.parts:
        if isinstance(part, SecretReference):
            out.append(f"{{{{ .{keys[part]} }}}}")
        else:
            out.append(str(part).replace("{{", '{{ "{{" }}'))
    return "".join(out)


def write_manifests(documents: Sequence[tuple[str, dict[str, Any]]], directory: Path,
                    redactor: SecretRedactor | None = None) -> list[Path]:
    """Write each (file name, manifest) as YAML; refuse any file holding a registered value."""
    redactor = redactor or default_redactor()
    rendered = []
    for file_name, document in documents:
        text = yaml.safe_dump(document, sort_keys=False)
        if redactor.scrub(text) != text:
            raise SecretReferenceError(
                f"{file_name} would contain a secret value and is bound for Git; it was not "
                "written (a secret variable reached a non-secret field)"
            )
        rendered.append((directory / file_name, text))
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in rendered:
        path.write_text(text, encoding="utf-8")
    return [path for path, _ in rendered]
