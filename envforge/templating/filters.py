"""Filters available in template expressions: Backstage's own, nunjucks' own, envforge's.

Backstage's `parseRepoUrl`, `parseEntityRef`, `pick` and `projectSlug` behave as in its
scaffolder, and nunjucks' `dump` and `nl2br` as in nunjucks, so templates written for Backstage
render the same; `dns_label` is envforge's. nunjucks' other built-ins are in
:mod:`envforge.templating.nunjucks_filters`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jinja2 import Undefined

from envforge.errors import TemplateError
from envforge.templating.jsvalues import json_indent, json_stringify

DNS_LABEL_MAX = 63
_NOT_LABEL = re.compile(r"[^a-z0-9-]+")


#: Backstage's default integrations by host; any other host is read as GitHub-like (envforge
#: has no integration list: the publishers' settings say where a host's API is)
_INTEGRATION_TYPES = {"github.com": "github", "gitlab.com": "gitlab",
                      "bitbucket.org": "bitbucketCloud", "dev.azure.com": "azure"}


def parse_repo_url(url: Any) -> dict[str, str]:
    """Backstage's RepoUrlPicker format ``host?owner=o&repo=r`` as ``{host, owner, repo,
    organization, workspace, project}`` (absent keys left out, values trimmed of ``/``), with
    the parameters each provider requires."""
    if not isinstance(url, str) or not url:
        raise TemplateError(f"parseRepoUrl: {url!r} is not a repository URL of the form "
                            "'github.com?owner=<owner>&repo=<repo>'")
    parsed = urlsplit(f"https://{url}")
    host = (parsed.hostname or "") + (f":{parsed.port}" if parsed.port else "")
    params: dict[str, str] = {}
    for key, value in parse_qsl(parsed.query, keep_blank_values=True):
        params.setdefault(key, value)
    kind = _INTEGRATION_TYPES.get(host, "github")
    required = {"bitbucketCloud": ("workspace", "project", "repo"), "azure": ("project", "repo"),
                "gitlab": () if params.get("project") else ("owner", "repo")}.get(
                    kind, ("repo", "owner"))
    for name in required:
        if not params.get(name):
            raise TemplateError(f"parseRepoUrl: {url!r} is missing {name} (Backstage: "
                                f"'Invalid repo URL passed to publisher ..., missing {name}')")
    result = {"host": host}
    for key in ("owner", "repo", "organization", "workspace", "project"):
        if key in params:
            result[key] = params[key].strip("/")
    return result


def project_slug(url: Any) -> str:
    """``owner/repo``, as Backstage builds it (``undefined/repo`` without an owner)."""
    parts = parse_repo_url(url)
    return f"{parts.get('owner', 'undefined')}/{parts.get('repo', 'undefined')}"


_PATH_PART = re.compile(r"""\[(?:'([^']*)'|"([^"]*)"|([^\]]*))\]""")


def pick(value: Any, key: Any) -> Any:
    """lodash ``get(value, key)``, as Backstage's ``pick``: ``key`` may be a path
    (``a.b``, ``a[0].b``); undefined when any part is missing."""
    if isinstance(key, list):
        parts = [str(k) for k in key]
    else:
        path = _PATH_PART.sub(lambda m: "." + "".join(g or "" for g in m.groups()), str(key))
        parts = path.split(".")
        if parts and parts[0] == "" and len(parts) > 1:
            parts = parts[1:]
    current = value
    for part in parts:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list | tuple | str) and part.isdigit() and int(part) < len(
                current) and (part == "0" or not part.startswith("0")):
            current = current[int(part)]  # a string's index is its character, as in JavaScript
        elif isinstance(current, list | tuple | str) and part == "length":
            current = len(current)
        else:
            raise TemplateError(f"pick: {key!r} is not in the value (Backstage fails too: "
                                "its filter result must be JSON)")
    return current


def dns_label(value: Any, max_length: int = DNS_LABEL_MAX) -> str:
    """A valid RFC 1123 label from any string: lower case, ASCII letters, digits and '-',
    starting and ending with an alphanumeric, at most ``max_length`` characters.

    Accents are folded (``Überprüfung`` -> ``uberprufung``); when the label has to be
    shortened, a short hash of the full input keeps different long inputs distinct.
    """
    if max_length < 8 or max_length > DNS_LABEL_MAX:
        raise TemplateError(f"dns_label: max_length must be between 8 and 63, got {max_length}")
    text = unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode("ascii")
    label = _NOT_LABEL.sub("-", text.lower()).strip("-")
    label = re.sub(r"-{2,}", "-", label)
    if not label:
        digest = hashlib.sha256(str(value).encode("utf-8")).hexdigest()[:8]
        return f"x-{digest}"
    if len(label) > max_length:
        digest = hashlib.sha256(str(value).encode("utf-8")).hexdigest()[:6]
        label = f"{label[: max_length - 7].rstrip('-')}-{digest}"
    if not label[0].isalnum():
        label = "x" + label[: max_length - 1]
    return label


def parse_entity_ref(ref: Any, context: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Backstage's ``[kind:][namespace/]name`` reference as ``{kind, namespace, name}``;
    ``context`` may give ``defaultKind`` and ``defaultNamespace`` (else ``default``), as
    @backstage/catalog-model's parseEntityRef."""
    if not ref or not isinstance(ref, str | Mapping):
        raise TemplateError("parseEntityRef: Entity reference must not be empty")
    context = context if isinstance(context, Mapping) else {}
    default_kind = context.get("defaultKind")
    default_namespace = context.get("defaultNamespace") or "default"
    kind: Any
    namespace: Any
    name: Any
    if isinstance(ref, str):
        colon, slash = ref.find(":"), ref.find("/")
        if slash != -1 and slash < colon:
            colon = -1
        kind = None if colon == -1 else ref[:colon]
        namespace = None if slash == -1 else ref[colon + 1: slash]
        name = ref[max(colon + 1, slash + 1):]
        if kind == "" or namespace == "" or name == "":
            raise TemplateError(f'parseEntityRef: Entity reference "{ref}" was not on the form '
                                "[<kind>:][<namespace>/]<name>")
        kind = default_kind if kind is None else kind
        namespace = default_namespace if namespace is None else namespace
    else:
        kind = ref.get("kind", default_kind)
        namespace = ref.get("namespace", default_namespace)
        name = ref.get("name")
    for part, value in (("kind", kind), ("namespace", namespace), ("name", name)):
        if not value:
            raise TemplateError(f"parseEntityRef: Entity reference {ref!r} had missing or "
                                f"empty {part} (give a {part}, as in 'group:default/team-a')")
    return {"kind": str(kind), "namespace": str(namespace), "name": str(name)}


def dump(value: Any, spaces: Any = None) -> Any:
    """nunjucks' ``dump``: JSON.stringify(value, null, spaces); undefined stays undefined
    (it renders as nothing, as in nunjucks)."""
    if isinstance(value, Undefined):
        str(value)  # records the use for `validate`
        return value
    text = json_stringify(value, json_indent(spaces), fallback=str)
    return "" if text is None else text


def nl2br(value: Any) -> str:
    """nunjucks' ``nl2br``: newlines as ``<br />``."""
    return re.sub(r"\r\n|\n", "<br />\n", str(value))


FILTERS: dict[str, Callable[..., Any]] = {
    "parseRepoUrl": parse_repo_url,
    "parseEntityRef": parse_entity_ref,
    "dump": dump,
    "nl2br": nl2br,
    "projectSlug": project_slug,
    "pick": pick,
    "dns_label": dns_label,
}
