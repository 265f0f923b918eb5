"""The state of the Kubernetes stand-in: typed resources, objects, resourceVersions, selectors,
patches, and errors shaped as the API server's ``Status`` objects."""

from __future__ import annotations

import base64
import binascii
import copy
import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def discovery(self) -> dict[str, Any]:
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update"]
        return {"name": self.plural, "singularName": self.kind.lower(), "namespaced":
                self.namespaced, "kind": self.kind, "verbs": verbs}


RESOURCES = [
    Resource("", "v1", "namespaces", "Namespace", False),
    Resource("", "v1", "secrets", "Secret", True),
    Resource("", "v1", "configmaps", "ConfigMap", True),
    Resource("", "v1", "pods", "Pod", True),
    Resource("", "v1", "events", "Event", True),
    Resource("", "v1", "services", "Service", True),
    Resource("apps", "v1", "deployments", "Deployment", True),
    Resource("networking.k8s.io", "v1", "ingresses", "Ingress", True),
    Resource("argoproj.io", "v1alpha1", "applications", "Application", True),
    Resource("external-secrets.io", "v1beta1", "externalsecrets", "ExternalSecret", True),
]


class ApiError(Exception):
    """An error answered as a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "message": self.message,
                                "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.plural} "{name}" not found',
                    {"name": name, "group": res.group, "kind": res.plural})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ClusterStore:
    """Objects by (group, plural, namespace, name); one resourceVersion counter for all."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.resources: dict[tuple[str, str], Resource] = {}
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.pod_logs: dict[tuple[str, str], str] = {}
        #: (revision, type, group, plural, object) of every change, for watches (bounded).
        self.events: list[tuple[int, str, str, str, dict[str, Any]]] = []
        self.changed = threading.Condition(self.lock)
        self.revision = 0
        for res in RESOURCES:
            self.register(res)
        for ns in ("default", "kube-system"):
            self.create(self.resource("", "namespaces"), "", {"metadata": {"name": ns}})

    def register(self, res: Resource) -> None:
        """Add a resource type (a custom resource, say) the server will then serve."""
        self.resources[(res.group, res.plural)] = res

    def resource(self, group: str, plural: str) -> Resource:
        try:
            return self.resources[(group, plural)]
        except KeyError:
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {}) from None

    def resource_for(self, api_version: str, kind: str) -> Resource:
        group = api_version.rpartition("/")[0]
        for res in self.resources.values():
            if res.group == group and res.kind == kind:
                return res
        raise KeyError(f"{api_version} {kind} is not served by the stand-in")

    # --- verbs -----------------------------------------------------------------------

    def get(self, res: Resource, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects.get((res.group, res.plural, namespace, name))
        if obj is None:
            raise not_found(res, name)
        return copy.deepcopy(obj)

    def list(self, res: Resource, namespace: str | None, label_selector: str = "",
             field_selector: str = "") -> dict[str, Any]:
        match = parse_selector(label_selector)
        names = dict(re.findall(r"metadata\.(name|namespace)==?([^,]+)", field_selector))
        items = [
            copy.deepcopy(obj) for (g, p, ns, name), obj in sorted(self.objects.items())
            if g == res.group and p == res.plural and (namespace is None or ns == namespace)
            and match(obj["metadata"].get("labels") or {})
            and names.get("name", name) == name and names.get("namespace", ns) == ns
        ]
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(self.revision)}, "items": items}

    def create(self, res: Resource, namespace: str, body: dict[str, Any],
               dry_run: bool = False) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = str(meta.get("name") or "")
        self._validate(res, name, obj)
        if res.namespaced:
            if meta.get("namespace", namespace) != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does "
                               "not match the namespace sent on the request")
            if ("", "namespaces", "", namespace) not in self.objects:
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                               {"name": namespace, "kind": "namespaces"})
            meta["namespace"] = namespace
        key = (res.group, res.plural, namespace if res.namespaced else "", name)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{res.plural} "{name}" already exists',
                           {"name": name, "group": res.group, "kind": res.plural})
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        _normalise(res, obj)
        if res.plural == "namespaces":
            obj.setdefault("status", {"phase": "Active"})
        if dry_run:
            return obj
        return self._store(key, obj)

    def replace(self, res: Resource, namespace: str, name: str, body: dict[str, Any],
                subresource: str = "") -> dict[str, Any]:
        current = self.get(res, namespace, name)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name "
                           "on the URL")
        self._check_version(res, name, meta.get("resourceVersion"), current)
        if subresource == "status":
            current["status"] = obj.get("status")
            obj = current
        else:
            self._validate(res, name, obj)
            for kept in ("uid", "creationTimestamp", "generation", "namespace"):
                if kept in current["metadata"]:
                    meta[kept] = current["metadata"][kept]
            meta["name"] = name
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
            if obj.get("spec") != current.get("spec"):
                meta["generation"] = current["metadata"].get("generation", 1) + 1
            _normalise(res, obj)
        return self._store((res.group, res.plural, namespace, name), obj)

    def patch(self, res: Resource, namespace: str, name: str, patch: Any, content_type: str,
              subresource: str = "") -> dict[str, Any]:
        current = self.get(res, namespace, name)
        if "json-patch" in content_type:
            if not isinstance(patch, list):
                raise ApiError(400, "BadRequest", "json: cannot unmarshal object into Go value "
                               "of type jsonpatch.Patch (send a list of operations, or use "
                               "application/merge-patch+json)")
            patched = apply_json_patch(current, patch)
        elif "merge-patch" in content_type:
            if not isinstance(patch, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
            patched = merge_patch(current, patch)
        else:
            raise ApiError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown format: {content_type}")
        if subresource == "status":
            current["status"] = patched.get("status")
            patched = current
        return self.replace(res, namespace, name, patched)

    def delete(self, res: Resource, namespace: str, name: str) -> dict[str, Any]:
        obj = self.get(res, namespace, name)
        del self.objects[(res.group, res.plural, namespace, name)]
        if res.plural == "namespaces":  # a real namespace terminates first; this is immediate
            for key in [k for k in self.objects if k[2] == name]:
                self._record("DELETED", key[0], key[1], self.objects.pop(key))
        self._record("DELETED", res.group, res.plural, obj)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": res.group, "kind": res.plural,
                            "uid": obj["metadata"]["uid"]}}

    # --- discovery -------------------------------------------------------------------

    def _groups(self) -> dict[str, set[str]]:
        groups: dict[str, set[str]] = {}
        for res in self.resources.values():
            if res.group:
                groups.setdefault(res.group, set()).add(res.version)
        return groups

    def group_list(self) -> dict[str, Any]:
        groups = []
        for group, versions in sorted(self._groups().items()):
            entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in sorted(versions)]
            groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group: str, version: str) -> dict[str, Any]:
        found: Iterable[Resource] = [r for r in self.resources.values()
                                     if r.group == group and r.version == version]
        entries = []
        for res in found:
            entries.append(res.discovery())
            entries.append({"name": f"{res.plural}/status", "singularName": "",
                            "namespaced": res.namespaced, "kind": res.kind,
                            "verbs": ["get", "patch", "update"]})
        if not entries:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        group_version = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                "resources": entries}

    # --- internals -------------------------------------------------------------------

    def _store(self, key: tuple[str, str, str, str], obj: dict[str, Any]) -> dict[str, Any]:
        kind = "MODIFIED" if key in self.objects else "ADDED"
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self.objects[key] = obj
        self.events.append((self.revision, kind, key[0], key[1], copy.deepcopy(obj)))
        self._trim_and_notify()
        return copy.deepcopy(obj)

    def _record(self, kind: str, group: str, plural: str, obj: dict[str, Any]) -> None:
        self.revision += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self.events.append((self.revision, kind, group, plural, obj))
        self._trim_and_notify()

    def _trim_and_notify(self) -> None:
        with self.lock:  # re-entrant: callers usually hold it already
            del self.events[:-5000]
            self.changed.notify_all()

    def events_since(self, res: Resource, namespace: str | None, since: int, selector: str
                     ) -> list[tuple[int, str, dict[str, Any]]]:
        """Changes to objects of ``res`` after revision ``since``, for a watch."""
        match = parse_selector(selector)
        return [(rev, kind, obj) for rev, kind, group, plural, obj in self.events
                if rev > since and group == res.group and plural == res.plural
                and (namespace is None or obj["metadata"].get("namespace") == namespace)
                and match(obj["metadata"].get("labels") or {})]

    def _check_version(self, res: Resource, name: str, sent: Any,
                       current: dict[str, Any]) -> None:
        if sent and str(sent) != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409, "Conflict",
                f'Operation cannot be fulfilled on {res.plural} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                {"name": name, "group": res.group, "kind": res.plural})

    def _validate(self, res: Resource, name: str, obj: dict[str, Any]) -> None:
        causes = []
        if not name:
            causes.append(("metadata.name", "Required value: name or generateName is required"))
        elif not DNS_SUBDOMAIN.match(name) or len(name) > 253:
            causes.append(("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 '
                           "subdomain must consist of lower case alphanumeric characters, '-' "
                           "or '.'"))
        for key, value in (obj.get("metadata", {}).get("labels") or {}).items():
            if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
                causes.append((f"metadata.labels.{key}", f'Invalid value: "{value}"'))
        if res.kind == "Secret":
            for key, value in (obj.get("data") or {}).items():
                try:
                    base64.b64decode(str(value), validate=True)
                except (binascii.Error, ValueError):
                    causes.append((f"data[{key}]", "Invalid value: illegal base64 data"))
        if causes:
            raise ApiError(
                422, "Invalid", f'{res.kind} "{name}" is invalid: '
                + ", ".join(f"{f}: {m}" for f, m in causes),
                {"name": name, "group": res.group, "kind": res.kind, "causes": [
                    {"reason": "FieldValueInvalid", "message": m, "field": f}
                    for f, m in causes]})


def _normalise(res: Resource, obj: dict[str, Any]) -> None:
    """What the API server does on write: Secret stringData folds into base64 data."""
    if res.kind == "Secret":
        data = dict(obj.get("data") or {})
        for key, value in (obj.pop("stringData", None) or {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data
        obj.setdefault("type", "Opaque")


def parse_selector(selector: str) -> Any:
    """A predicate for a label selector: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``,
    ``a notin (x)``, ``a``, ``!a``, comma-separated."""
    terms = re.findall(r"[^,(]+(?:\([^)]*\))?", selector or "")
    checks = []
    for raw in (t.strip() for t in terms if t.strip()):
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", raw):
            key, op, values = m[1], m[2], {v.strip() for v in m[3].split(",")}
            checks.append(lambda lb, k=key, o=op, vs=values: (lb.get(k) in vs) == (o == "in"))
        elif m := re.fullmatch(r"([\w./-]+)\s*(!=|==|=)\s*([\w.-]*)", raw):
            key, op, value = m[1], m[2], m[3]
            checks.append(lambda lb, k=key, o=op, v=value: (lb.get(k) == v) == (o != "!="))
        elif m := re.fullmatch(r"(!?)([\w./-]+)", raw):
            checks.append(lambda lb, k=m[2], neg=bool(m[1]): (k in lb) != neg)
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {raw!r}")
    return lambda labels: all(check(labels) for check in checks)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic merge patches)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_json_patch(doc: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 add/replace/remove/test."""
    result = copy.deepcopy(doc)
    for op in operations:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = result
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1]
        kind = op["op"]
        if kind == "test":
            actual = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if actual != op.get("value"):
                raise ApiError(422, "Invalid", f"the test operation on {op['path']} failed")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last)
        else:
            raise ApiError(400, "BadRequest", f"unsupported JSON patch operation {kind!r}")
    return result
