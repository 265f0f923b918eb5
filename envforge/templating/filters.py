"""Filters available in template expressions: Backstage's own, nunjucks' own, envforge's.

Backstage's `parseRepoUrl`, `parseEntityRef`, `pick` and `projectSlug` behave as in its
scaffolder, and nunjucks' `dump` and `nl2br` as in nunjucks, so templates written for Backstage
render the same; `dns_label` is envforge's. Jinja2's built-in filters cover the rest of
nunjucks' (`default`, `join`, `replace`, `lower`, `title`, `trim`, `length`, ...).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Undefined

from envforge.errors import TemplateError

DNS_LABEL_MAX = 63
_NOT_LABEL = re.compile(r"[^a-z0-9-]+")


def parse_repo_url(url: str) -> dict[str, str]:
    """Backstage's RepoUrlPicker format: ``host?owner=o&repo=r`` (plus organization, workspace,
    project for the providers that use them)."""
    if not isinstance(url, str) or "?" not in url:
        raise TemplateError(
            f"parseRepoUrl: {url!r} is not a repository URL of the form "
            "'github.com?owner=<owner>&repo=<repo>'"
        )
    host, _, query = url.partition("?")
    params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=False).items()}
    if not host or "repo" not in params:
        raise TemplateError(f"parseRepoUrl: {url!r} needs a host and a 'repo' query parameter")
    result = {"host": host, "repo": params["repo"]}
    for key in ("owner", "organization", "workspace", "project"):
        if key in params:
            result[key] = params[key]
    return result


def project_slug(url: str) -> str:
    """``owner/repo`` (or ``workspace/repo``, ``organization/repo``) from a repository URL."""
    parts = parse_repo_url(url)
    owner = parts.get("owner") or parts.get("workspace") or parts.get("organization") or ""
    return f"{owner}/{parts['repo']}" if owner else parts["repo"]


def pick(value: Mapping[str, Any], key: str) -> Any:
    """The value of one key of an object, as Backstage's ``pick`` filter."""
    if not isinstance(value, Mapping):
        raise TemplateError(f"pick: expected an object, got {type(value).__name__}")
    return value.get(key)


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
    ``context`` may give ``defaultKind`` and ``defaultNamespace`` (else ``default``)."""
    if not isinstance(ref, str) or not ref.strip():
        raise TemplateError(f"parseEntityRef: {ref!r} is not an entity reference such as "
                            "'group:default/team-a'")
    context = context or {}
    kind, sep, rest = ref.partition(":")
    if not sep:
        kind, rest = str(context.get("defaultKind") or ""), ref
    namespace, sep, name = rest.partition("/")
    if not sep:
        namespace, name = str(context.get("defaultNamespace") or "default"), rest
    if not kind or not name or not namespace:
        raise TemplateError(f"parseEntityRef: {ref!r} needs a kind (or a defaultKind) and a "
                            "name, as in 'group:default/team-a'")
    return {"kind": kind, "namespace": namespace, "name": name}


def dump(value: Any, spaces: int | str | None = None) -> str:
    """nunjucks' ``dump``: JSON.stringify(value, null, spaces); undefined dumps as ''."""
    if isinstance(value, Undefined):
        str(value)  # records the use for `validate`; renders empty as in nunjucks
        return ""
    indent: int | str | None = spaces
    if isinstance(spaces, int) and spaces > 10:
        indent = 10  # JSON.stringify caps indentation at 10 too
    separators = (",", ":") if not indent else (",", ": ")
    return json.dumps(value, indent=indent or None, separators=separators,
                      ensure_ascii=False, default=str)


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
