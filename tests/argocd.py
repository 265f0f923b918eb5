"""The real Argo CD for tests: its application controller and repo server (built from the pinned
module by ``scripts/services/argocd.sh``, with Redis from Debian) against the session's
Kubernetes API server. One per session: the one `make test` started beside the control plane
(``ENVFORGE_TEST_ARGOCD`` names its state directory), or one started here.

Two controllers on one cluster would fight over the same Applications: when you give the
session a cluster of your own (``ENVFORGE_TEST_KUBECONFIG``) that already runs Argo CD, give
its state directory too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.kube import ControlPlane

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "services" / "argocd.sh"
#: Set by `make test` (scripts/run-tests.sh) to the state directory of the Argo CD it started.
EXTERNAL = "ENVFORGE_TEST_ARGOCD"
NAMESPACE = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"
FINALIZER = "resources-finalizer.argocd.argoproj.io"
#: How Argo CD marks what an Application deployed (argocd-cm: resourceTrackingMethod annotation)
TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
REFRESH_ANNOTATION = "argocd.argoproj.io/refresh"


@dataclass
class ArgoCD:
    """A running Argo CD: its state directory (logs, pids) and whether it was started here."""

    state_dir: Path
    started_here: bool = False

    def log_tail(self, lines: int = 40) -> str:
        """The end of the controller's log, for a failing test's message."""
        log = self.state_dir / "argocd-application-controller.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def start_argocd(plane: ControlPlane) -> ArgoCD:
    """The session's Argo CD: external when ``ENVFORGE_TEST_ARGOCD`` is set, otherwise started
    here against ``plane`` (built once into the cache on first use)."""
    external = os.environ.get(EXTERNAL)
    if external:
        return ArgoCD(Path(external))
    state = Path(tempfile.mkdtemp(prefix="envforge-argocd-"))
    started = subprocess.run(["bash", str(SCRIPT), "start", str(state), str(plane.kubeconfig)],
                             capture_output=True, text=True, check=False, timeout=3600)
    if started.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], check=False)
        raise RuntimeError(f"could not start Argo CD: {started.stderr[-3000:]}")
    return ArgoCD(state, started_here=True)


def stop_argocd(argocd: ArgoCD) -> None:
    if argocd.started_here:
        subprocess.run(["bash", str(SCRIPT), "stop", str(argocd.state_dir)], check=False)
        shutil.rmtree(argocd.state_dir, ignore_errors=True)


def root_application(repo_url: str, branch: str = "main", name: str = "envforge-root"
                     ) -> dict[str, Any]:
    """The app-of-apps a platform team creates once per cluster (docs/gitops.md): it syncs
    the ``argocd/`` directory of the GitOps repository with prune, and ``allowEmpty`` so that
    destroying the last environment is pruned too (Argo CD refuses an automated sync that
    would delete every resource of an app unless allowEmpty is set)."""
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"project": "default",
                     "source": {"repoURL": repo_url, "targetRevision": branch, "path": "argocd",
                                "directory": {"recurse": False}},
                     "destination": {"server": IN_CLUSTER, "namespace": NAMESPACE},
                     "syncPolicy": {"automated": {"prune": True, "selfHeal": True,
                                                  "allowEmpty": True}}}}


def refresh(plane: ControlPlane, name: str) -> None:
    """Ask Argo CD to compare ``name`` with Git now (what envforge does after a commit)."""
    plane.kubectl("annotate", "application", "-n", NAMESPACE, name,
                  f"{REFRESH_ANNOTATION}=normal", "--overwrite", check=False)
