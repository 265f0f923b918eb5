"""A small stateful stand-in for the Kubernetes API server, for tests and demos.

Speaks the REST conventions the official kubernetes client relies on: ``/api``, ``/apis`` and
``/version`` discovery; namespaced and cluster-scoped resources (Namespace, Secret, ConfigMap,
Pod, Event, Service, apps/v1 Deployment, Ingress, Argo CD ``Application``, ExternalSecret; more
through :meth:`KubernetesStandin.register`), each with get, list (label and field selectors),
create (``generateName``, ``dryRun=All``), replace (409 Conflict on a stale
``resourceVersion``), patch (JSON, merge and strategic-merge), delete and the ``status``
subresource; pod logs (``follow`` and pod ``exec`` over a websocket are served by
``kubernetes_streams``); errors as ``Status`` objects with reason and code. Bearer-token auth.

Watches (``?watch=true``) stream ADDED/MODIFIED/DELETED events as JSON lines until
``timeoutSeconds`` (at most 60). Not served: server-side apply, finalizers (a deleted namespace vanishes at once with
its contents). Faults for tests: :meth:`KubernetesStandin.fail` drops or fails matching requests.

Reuse from any test::

    standin = start_kubernetes_standin()
    kubeconfig = standin.write_kubeconfig(tmp_path / "config")
    standin.set_status("argoproj.io", "applications", "argocd", "app", {"health": {...}})
    standin.stop()

Run a demo server: ``python -m tests.standins.kubernetes --port 8443``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.standins.kubernetes_store import ApiError, ClusterStore, Resource
from tests.standins.kubernetes_streams import serve_stream, wants_stream

TOKEN = "standin-token"


@dataclass
class Fault:
    """Requests matching ``method`` and ``path`` (a regex) get ``status`` (a Status error) or,
    with status 0, a dropped connection; ``times`` < 0 means for ever."""

    method: str
    path: str
    status: int = 0
    times: int = 1


@dataclass
class Watch:
    """A watch request: stream events of ``res`` after ``since`` (None: list first)."""

    res: Resource
    namespace: str | None
    query: dict[str, str]

    @property
    def since(self) -> int | None:
        value = self.query.get("resourceVersion")
        return int(value) if value and value != "0" else None

    @property
    def selector(self) -> str:
        return self.query.get("labelSelector", "")

    @property
    def timeout(self) -> float:
        return min(60.0, float(self.query.get("timeoutSeconds") or 30))


class KubernetesHandler(BaseHTTPRequestHandler):
    server_version = "KubernetesStandin/1.0"
    protocol_version = "HTTP/1.1"
    standin: KubernetesStandin

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.standin.connections_lock:
            self.standin.connections.add(self.connection)

    def finish(self) -> None:
        with self.standin.connections_lock:
            self.standin.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        standin = self.standin
        fault = standin.take_fault(method, url.path)
        if fault is not None and fault.status == 0:
            self.close_connection = True
            self.connection.close()  # the client sees the connection drop
            return
        try:
            if fault is not None:
                reasons = {409: "Conflict", 404: "NotFound", 403: "Forbidden", 422: "Invalid"}
                raise ApiError(fault.status, reasons.get(fault.status, "InternalError" if
                               fault.status >= 500 else "BadRequest"),
                               f"injected fault on {method} {url.path}")
            if self.headers.get("Authorization") != f"Bearer {standin.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if wants_stream(method, url.path, query, self.headers):  # exec, followed logs
                serve_stream(self, url.path, query, url.query)
                return
            body = json.loads(raw) if raw.strip() else None
            with standin.store.lock:
                standin.requests.append((method, url.path))
                status, payload = self._route(method, url.path, query, body)
        except ApiError as e:
            status, payload = e.code, e.status()
        except json.JSONDecodeError:
            status, payload = 400, ApiError(400, "BadRequest", "invalid JSON body").status()
        except (KeyError, IndexError, ValueError, TypeError) as e:
            status, payload = 422, ApiError(422, "Invalid", f"cannot apply: {e}").status()
        self._reply(status, payload)

    def _reply(self, status: int, payload: Any) -> None:
        if isinstance(payload, Watch):
            self._stream(payload)
            return
        if isinstance(payload, str):
            data, kind = payload.encode(), "text/plain"
        else:
            data, kind = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, watch: Watch) -> None:
        """A watch: one JSON event per line, chunked, until timeoutSeconds (at most 60 s)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        store = self.standin.store
        deadline = time.monotonic() + watch.timeout
        since = watch.since
        with store.lock:
            if since is None:  # no resourceVersion: start with the current objects as ADDED
                listed = store.list(watch.res, watch.namespace, watch.selector)
                pending = [("ADDED", obj) for obj in listed["items"]]
                since = store.revision
            else:
                pending = []
        try:
            while True:
                for kind, obj in pending:
                    line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                    self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
                left = deadline - time.monotonic()
                if left <= 0 or self.standin.stopping:
                    break
                with store.lock:
                    store.changed.wait(timeout=min(left, 0.5))
                    events = store.events_since(watch.res, watch.namespace, since,
                                                watch.selector)
                if events:
                    since = events[-1][0]
                pending = [(kind, obj) for _, kind, obj in events]
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _route(self, method: str, path: str, query: dict[str, str], body: Any
               ) -> tuple[int, Any]:
        store = self.standin.store
        if path == "/version":
            return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-standin",
                         "platform": "linux/amd64"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": []}
        if path == "/apis":
            return 200, self.standin.store.group_list()
        match = re.fullmatch(r"/api/v1(?P<rest>/.*)?|/apis/(?P<g>[^/]+)/(?P<v>[^/]+)(?P<r>/.*)?",
                             path)
        if match is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        group = match["g"] or ""
        version = match["v"] or "v1"
        rest = (match["rest"] if match["g"] is None else match["r"]) or ""
        segments = [s for s in rest.split("/") if s]
        if not segments:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "method not allowed")
            return 200, self.standin.store.resource_list(group, version)
        namespace: str | None = None
        if (segments[0] == "namespaces" and len(segments) >= 3
                and (group, segments[2]) in store.resources):
            namespace, segments = segments[1], segments[2:]
        res = store.resource(group, segments[0])
        if res.version != version:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = segments[1] if len(segments) > 1 else None
        sub = segments[2] if len(segments) > 2 else ""
        scope = namespace or ""
        if res.namespaced and name is not None and namespace is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub == "log" and res.plural == "pods" and method == "GET":
            store.get(res, scope, name or "")
            text = store.pod_logs.get((scope, name or ""), "")
            tail = int(query.get("tailLines") or 0)
            lines = text.splitlines(keepends=True)
            return 200, "".join(lines[-tail:] if tail else lines)
        if sub not in ("", "status"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if query.get("watch") in ("true", "1") and name is None and method == "GET":
            return 200, Watch(res, namespace if res.namespaced else None, query)
        if name is None:
            if method == "GET":
                return 200, store.list(res, namespace if res.namespaced else None,
                                       query.get("labelSelector", ""),
                                       query.get("fieldSelector", ""))
            if method == "POST":
                created = store.create(res, scope, body or {}, query.get("dryRun") == "All")
                return 201, created
            if method == "DELETE":
                listed = store.list(res, namespace, query.get("labelSelector", ""))
                for item in listed["items"]:
                    store.delete(res, item["metadata"].get("namespace", ""),
                                 item["metadata"]["name"])
                return 200, listed
        elif method == "GET":
            return 200, store.get(res, scope, name)
        elif method == "PUT":
            return 200, store.replace(res, scope, name, body or {}, sub)
        elif method == "PATCH":
            kind = self.headers.get("Content-Type", "")
            return 200, store.patch(res, scope, name, body, kind, sub)
        elif method == "DELETE" and not sub:
            return 200, store.delete(res, scope, name)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed here")


class KubernetesStandin:
    """A running stand-in: ``url``, ``store`` (the objects), helpers for tests, ``stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str = TOKEN) -> None:
        self.store = ClusterStore()
        self.token = token
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.stopping = False
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self._fault_lock = threading.Lock()
        handler = type("BoundKubernetesHandler", (KubernetesHandler,), {"standin": self})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="kubernetes-standin")

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> KubernetesStandin:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping = True  # open watches end within half a second
        with self.store.lock:
            self.store.changed.notify_all()
        self.server.shutdown()
        self.server.server_close()
        with self.connections_lock:  # keep-alive connections would otherwise still be served
            for connection in list(self.connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    # --- for tests -------------------------------------------------------------------

    def write_kubeconfig(self, path: Path | str, namespace: str = "default",
                         context: str = "standin") -> Path:
        """A kubeconfig file pointing at this server (token auth); returns its path."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context,
                                                       "namespace": namespace}}],
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config))
        return target

    def register(self, group: str, version: str, plural: str, kind: str,
                 namespaced: bool = True) -> None:
        """Serve another (custom) resource type."""
        self.store.register(Resource(group, version, plural, kind, namespaced))

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object as a client would (namespace taken from its metadata)."""
        res = self.store.resource_for(obj["apiVersion"], obj["kind"])
        namespace = obj.get("metadata", {}).get("namespace", "") if res.namespaced else ""
        with self.store.lock:
            return self.store.create(res, namespace, obj)

    def get(self, group: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.store.lock:
            try:
                return self.store.get(self.store.resource(group, plural), namespace, name)
            except ApiError:
                return None

    def objects(self, group: str, plural: str, namespace: str | None = None
                ) -> list[dict[str, Any]]:
        with self.store.lock:
            items = self.store.list(self.store.resource(group, plural), namespace)["items"]
            return list(items)

    def set_status(self, group: str, plural: str, namespace: str, name: str,
                   status: dict[str, Any]) -> dict[str, Any]:
        """Merge ``status`` into an object's status (what a controller would do)."""
        with self.store.lock:
            res = self.store.resource(group, plural)
            return self.store.patch(res, namespace, name, {"status": status},
                                    "application/merge-patch+json", "status")

    def set_pod_log(self, namespace: str, name: str, text: str) -> None:
        with self.store.lock:
            self.store.pod_logs[(namespace, name)] = text

    def fail(self, method: str, path: str, status: int = 0, times: int = 1) -> Fault:
        """Drop (status 0) or fail the next ``times`` requests matching; returns the fault."""
        fault = Fault(method.upper(), path, status, times)
        with self._fault_lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._fault_lock:
            self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._fault_lock:
            for fault in self.faults:
                if fault.method in (method, "*") and re.search(fault.path, path):
                    if fault.times > 0:
                        fault.times -= 1
                        if fault.times == 0:
                            self.faults.remove(fault)
                    return fault
        return None


def start_kubernetes_standin(port: int = 0) -> KubernetesStandin:
    """Start a stand-in on 127.0.0.1 (a free port unless given) in a background thread."""
    return KubernetesStandin(port=port).start()


def main() -> None:  # pragma: no cover - demo entry point
    parser = argparse.ArgumentParser(description="Kubernetes API stand-in")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--kubeconfig", default="", help="also write a kubeconfig here")
    args = parser.parse_args()
    standin = KubernetesStandin(port=args.port)
    if args.kubeconfig:
        standin.write_kubeconfig(args.kubeconfig)
    print(f"Kubernetes stand-in on {standin.url}; bearer token {standin.token}", flush=True)
    try:
        standin.server.serve_forever()
    except KeyboardInterrupt:
        standin.server.server_close()


if __name__ == "__main__":  # pragma: no cover
    main()
