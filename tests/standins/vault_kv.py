"""The KV secrets engines (v1 and v2) of the Vault stand-in, and the response envelope and error
every part of the stand-in answers with (Vault's ``{"errors": [...]}``)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class KvVersion:
    data: dict[str, Any]
    created_time: str = field(default_factory=_now)
    deletion_time: str = ""
    destroyed: bool = False

    def metadata(self, version: int) -> dict[str, Any]:
        return {"created_time": self.created_time, "custom_metadata": None,
                "deletion_time": self.deletion_time, "destroyed": self.destroyed,
                "version": version}


class VaultApiError(Exception):
    """Answered as Vault answers errors: ``status`` and ``{"errors": [...]}``."""

    def __init__(self, status: int, errors: list[str]) -> None:
        self.status = status
        self.errors = errors


def envelope(data: Any, auth: dict[str, Any] | None = None, lease_duration: int = 0
             ) -> dict[str, Any]:
    """Vault's response body around ``data`` (and ``auth``)."""
    return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
            "lease_duration": lease_duration, "data": data, "wrap_info": None,
            "warnings": None, "auth": auth, "mount_type": ""}


class KvEngines:
    """Mounts and secrets; the stand-in's state extends this (``put_secret`` seeds it)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.mounts: dict[str, int] = {"kv": 2, "secret": 2, "kv1": 1}
        self.kv2: dict[tuple[str, str], list[KvVersion]] = {}
        self.kv1: dict[tuple[str, str], dict[str, Any]] = {}
        self.reads: Counter[str] = Counter()  # "mount/path" -> reads of its data

    def exists(self, path: str) -> bool:
        """Whether a write to ``path`` updates (True) or creates, for the ACL's create/update."""
        mount, _, rest = path.partition("/")
        kind, _, key = rest.partition("/")
        if self.mounts.get(mount) == 2 and kind == "data":
            return bool(self.kv2.get((mount, key)))
        if self.mounts.get(mount) == 1:
            return (mount, rest) in self.kv1
        return True  # endpoints without an existence check are updates in Vault

    def put_secret(self, mount: str, path: str, data: dict[str, Any]) -> int:
        """Write a secret as a client would; returns its (v2) version."""
        with self.lock:
            if self.mounts.get(mount) == 1:
                self.kv1[(mount, path)] = dict(data)
                return 0
            versions = self.kv2.setdefault((mount, path), [])
            versions.append(KvVersion(dict(data)))
            return len(versions)


    def handle_kv2(self, method: str, mount: str, rest: str, query: dict[str, str],
             body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        kind, _, path = rest.partition("/")
        key = (mount, path)
        versions = self.kv2.get(key, [])
        if kind == "data" and path:
            if method == "GET":
                self.reads[f"{mount}/{path}"] += 1
                number = int(query.get("version") or 0) or len(versions)
                if not versions or number > len(versions):
                    raise VaultApiError(404, [])
                version = versions[number - 1]
                result = {"data": None if version.deletion_time or version.destroyed
                          else version.data, "metadata": version.metadata(number)}
                if result["data"] is None:
                    return 404, envelope(result)
                return 200, envelope(result)
            if method == "POST":
                data = body.get("data")
                if not isinstance(data, dict):
                    raise VaultApiError(400, ["no data provided"])
                cas = (body.get("options") or {}).get("cas")
                if cas is not None and int(cas) != len(versions):
                    raise VaultApiError(400, [
                        "check-and-set parameter did not match the current version"])
                number = self.put_secret(mount, path, data)
                return 200, envelope(self.kv2[key][-1].metadata(number))
            if method == "DELETE" and versions:
                versions[-1].deletion_time = _now()
                return 204, None
        if kind == "metadata":
            if method == "LIST":
                prefix = f"{path}/" if path else ""
                keys = sorted({p[len(prefix):].split("/")[0] + ("/" if "/" in p[len(prefix):]
                               else "") for (m, p) in self.kv2
                               if m == mount and p.startswith(prefix)})
                if not keys:
                    raise VaultApiError(404, [])
                return 200, envelope({"keys": keys})
            if method == "GET" and versions:
                return 200, envelope({
                    "cas_required": False, "created_time": versions[0].created_time,
                    "current_version": len(versions), "custom_metadata": None,
                    "delete_version_after": "0s", "max_versions": 0, "oldest_version": 1,
                    "updated_time": versions[-1].created_time,
                    "versions": {str(i + 1): v.metadata(i + 1) for i, v in enumerate(versions)},
                })
            if method == "DELETE":
                self.kv2.pop(key, None)
                return 204, None
            raise VaultApiError(404, [])
        raise VaultApiError(404, [f'no handler for route "{mount}/{rest}". route entry not found.'])

    def handle_kv1(self, method: str, mount: str, path: str, body: dict[str, Any]
             ) -> tuple[int, dict[str, Any] | None]:
        key = (mount, path)
        if method == "GET":
            self.reads[f"{mount}/{path}"] += 1
            if key not in self.kv1:
                raise VaultApiError(404, [])
            return 200, envelope(dict(self.kv1[key]), lease_duration=2764800)
        if method == "POST":
            self.put_secret(mount, path, body)
            return 204, None
        if method == "DELETE":
            self.kv1.pop(key, None)
            return 204, None
        raise VaultApiError(405, [])
