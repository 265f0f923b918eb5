"""The real Kubernetes control plane for tests: the one `make test` started
(``ENVFORGE_TEST_KUBECONFIG``), a cluster of your own given the same way, or, when neither is
set, one started here by ``scripts/services/kubernetes.sh`` for the session.

Only the kubelet is simulated (kwok marks pods Running/Ready); everything else is the real
kube-apiserver, kube-controller-manager and kube-scheduler at the pinned version.
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


def start_control_plane() -> ControlPlane:
    """The cluster to test against: external when ``ENVFORGE_TEST_KUBECONFIG`` is set,
    otherwise a fresh one from the script (built once, cached outside the checkout)."""
    external = os.environ.get(EXTERNAL)
    if external:
        return ControlPlane(Path(external))
    if shutil.which("go") is None and not kubectl_binary().exists():
        raise RuntimeError("no Kubernetes control plane: Go is not installed to build one and "
                           f"{EXTERNAL} is not set")
    state = Path(tempfile.mkdtemp(prefix="envforge-kube-"))
    started = subprocess.run(["bash", str(SCRIPT), "start", str(state)], capture_output=True,
                             text=True, check=False, timeout=3600)
    if started.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], check=False)
        raise RuntimeError(f"could not start the Kubernetes control plane: {started.stderr}")
    return ControlPlane(state / "kubeconfig", state, started_here=True)


def stop_control_plane(plane: ControlPlane) -> None:
    if plane.started_here and plane.state_dir is not None:
        subprocess.run(["bash", str(SCRIPT), "stop", str(plane.state_dir)], check=False)
        shutil.rmtree(plane.state_dir, ignore_errors=True)
