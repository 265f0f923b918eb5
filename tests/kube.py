"""The real Kubernetes control plane for tests: the one `make test` started
(``ENVFORGE_TEST_KUBECONFIG``), a cluster of your own given the same way, or, when neither is
set, one started here by ``scripts/services/kubernetes.sh`` for the session.

The control plane is the real kube-apiserver, kube-controller-manager and kube-scheduler at the
pinned version. Its node is kwok (a simulated kubelet: pods Running/Ready without containers)
unless ``ENVFORGE_NODE=real`` (or ``start_control_plane(node="real")``): then a real kubelet,
kube-proxy, containerd and runc run the pods, and Traefik routes Ingress hosts on 127.0.0.1
(scripts/services/node.sh, ingress.sh).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "services" / "kubernetes.sh"
#: Set by `make test` (and by anyone with a cluster of their own) to skip starting one here.
EXTERNAL = "ENVFORGE_TEST_KUBECONFIG"


@dataclass
class ControlPlane:
    """A running API server: its admin kubeconfig and, when started here, its state dir."""

    kubeconfig: Path
    state_dir: Path | None = None
    started_here: bool = False
    _config: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def server(self) -> str:
        return str(self._cluster()["server"])

    def _cluster(self) -> dict[str, Any]:
        if not self._config:
            self._config = yaml.safe_load(self.kubeconfig.read_text())
        config = self._config
        context = next(c["context"] for c in config["contexts"]
                       if c["name"] == config["current-context"])
        return next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])

    def _ssl_context(self) -> ssl.SSLContext:
        cluster = self._cluster()
        ctx = ssl.create_default_context()
        if "certificate-authority" in cluster:
            ctx.load_verify_locations(cafile=cluster["certificate-authority"])
        elif "certificate-authority-data" in cluster:
            ctx.load_verify_locations(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        return ctx

    @property
    def node_kind(self) -> str:
        """``real`` or ``kwok``: what kubernetes.sh started, else what the Node reports."""
        recorded = self.kubeconfig.parent / "node-kind"  # beside kubernetes.sh's kubeconfig
        if recorded.is_file():
            return recorded.read_text().strip()
        runtime = self.kubectl("get", "nodes", "-o",
                               "jsonpath={.items[*].status.nodeInfo.containerRuntimeVersion}",
                               check=False).stdout
        return "real" if runtime and "kwok" not in runtime else "kwok"

    @property
    def ingress_port(self) -> int | None:
        """The 127.0.0.1 port where the ingress controller routes Ingress hosts (real node)."""
        port = self.kubeconfig.parent / "ingress" / "port"
        return int(port.read_text()) if port.is_file() else None

    def version(self) -> dict[str, Any]:
        """``GET /version`` (readable without credentials on every API server)."""
        with urllib.request.urlopen(self.server + "/version", timeout=10,
                                    context=self._ssl_context()) as answer:
            return dict(json.load(answer))

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        """The pinned kubectl against this cluster."""
        return subprocess.run([str(kubectl_binary()), "--kubeconfig", str(self.kubeconfig),
                               *args], input=stdin, capture_output=True, text=True,
                              check=check, timeout=120)

    def kubeconfig_for_token(self, token: str, path: Path) -> Path:
        """A kubeconfig for the same server authenticating with ``token`` (e.g. a
        ServiceAccount bound to a narrow Role, for permission errors)."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        for user in config["users"]:
            user["user"] = {"token": token}
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path


def kubectl_binary() -> Path:
    out = subprocess.run(["bash", str(SCRIPT), "version"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    return Path(out[-1]) / "kubectl"


def start_control_plane(node: str | None = None) -> ControlPlane:
    """The cluster to test against: external when ``ENVFORGE_TEST_KUBECONFIG`` is set (and no
    ``node`` kind is asked for), otherwise a fresh one from the script (built once, cached
    outside the checkout) whose node is ``node`` (``real`` or ``kwok``; default
    ``$ENVFORGE_NODE``, else kwok)."""
    external = os.environ.get(EXTERNAL)
    if external and node is None:
        return ControlPlane(Path(external))
    if shutil.which("go") is None and not kubectl_binary().exists():
        raise RuntimeError("no Kubernetes control plane: Go is not installed to build one and "
                           f"{EXTERNAL} is not set")
    state = Path(tempfile.mkdtemp(prefix="envforge-kube-"))
    env = dict(os.environ)
    if node is not None:
        env["ENVFORGE_NODE"] = node
    started = subprocess.run(["bash", str(SCRIPT), "start", str(state)], capture_output=True,
                             text=True, check=False, timeout=3600, env=env)
    if started.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], check=False)
        shutil.rmtree(state, ignore_errors=True)
        raise RuntimeError(f"could not start the Kubernetes control plane: {started.stderr}")
    return ControlPlane(state / "kubeconfig", state, started_here=True)


def stop_control_plane(plane: ControlPlane) -> None:
    if plane.started_here and plane.state_dir is not None:
        subprocess.run(["bash", str(SCRIPT), "stop", str(plane.state_dir)], check=False)
        shutil.rmtree(plane.state_dir, ignore_errors=True)
