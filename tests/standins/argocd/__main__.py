"""``python -m tests.standins.argocd --kubeconfig K [--root-repo URL]``: the stand-in as a
process (the demo's), printing an "argocd stand-in on" line once it runs."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from tests.standins.argocd.controller import ArgoCDStandin, root_application
from tests.standins.argocd.resources import NAMESPACE


def main() -> None:
    parser = argparse.ArgumentParser(description="The Argo CD stand-in (tests and demo only)")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--root-repo", help="create the app-of-apps for this GitOps repo URL")
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    standin = ArgoCDStandin(Path(args.kubeconfig), interval=args.interval)
    if args.root_repo:
        body = root_application(args.root_repo)
        standin.client.server_side_apply(standin.apps, body=body, name=body["metadata"]["name"],
                                         namespace=NAMESPACE, field_manager="envforge-demo",
                                         force_conflicts=True)
    standin.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"argocd stand-in on: Applications in namespace {NAMESPACE} at "
          f"{standin.api.configuration.host}", flush=True)
    done.wait()
    standin.stop()



main()
