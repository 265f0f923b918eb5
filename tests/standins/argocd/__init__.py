"""THE ARGO CD STAND-IN: Argo CD's application controller, for tests and the demo only.

Argo CD cannot be built on these machines (its gitops-engine module does not build from the Go
module proxy), so this module does for envforge's Applications what Argo CD's application
controller does, against the REAL Kubernetes API server (scripts/services/kubernetes.sh):

- polls the ``Application`` objects in namespace ``argocd``;
- fetches ``spec.source.repoURL`` (git over file:// or http://, hooks disabled) at
  ``targetRevision`` and renders the plain YAML/JSON manifests under ``path`` (sub-directories
  only with ``directory.recurse: true``); the destination namespace fills in namespaced objects
  that name none; only the in-cluster destination is known;
- compares them with the live objects (a server-side dry-run apply where a plain comparison
  differs, as Argo CD's server-side diff does); with ``syncPolicy.automated`` (or an
  ``operation.sync`` set on the Application) syncs: server-side apply with field manager
  ``argocd-controller`` and ``force`` (Argo CD's ``ServerSideApply=true``), in Argo CD's kind
  order, the namespace first when ``syncOptions`` has ``CreateNamespace=true``; prunes tracked
  objects that left Git when ``automated.prune`` is set (after the rest with ``PruneLast=true``);
  retries a failed sync as ``syncPolicy.retry`` says (limit, backoff);
- tracks what it applied with the ``argocd.argoproj.io/tracking-id`` annotation
  (``<app>:<group>/<Kind>:<namespace>/<name>``), the default tracking method of Argo CD 3;
- on deletion of an Application carrying ``resources-finalizer.argocd.argoproj.io`` (or its
  ``/background`` form) deletes the tracked objects, waits until they are gone (a Namespace
  stays Terminating until the namespace controller emptied it) and then removes the finalizer;
- writes ``status.sync`` (Synced/OutOfSync/Unknown, revision, comparedTo), ``status.health``
  (the worst of its resources' health: Healthy/Suspended/Progressing/Missing/Degraded, from
  Argo CD's documented built-in checks), ``status.resources``, ``status.operationState``
  (phase Running/Succeeded/Failed/Error, message, syncResult with resources), ``conditions``,
  ``history``, ``reconciledAt``, ``sourceType``. The Application CRD has no status subresource,
  so status is written with a merge patch of the Application itself.

Not done (envforge does not use it): Helm, Kustomize, plugins, hooks, sync waves, multiple
sources, other clusters, projects' restrictions beyond the project having to exist.
Written from Argo CD's documentation; tests/integration/argocd/test_standin_conformance.py
checks it against that documentation (each test names its page).

    handle = start_argocd_standin(kubeconfig)   # a thread; handle.stop()
    python -m tests.standins.argocd --kubeconfig K   # a process (the demo)
"""

from tests.standins.argocd.controller import ArgoCDStandin, root_application, start_argocd_standin
from tests.standins.argocd.health import resource_health
from tests.standins.argocd.resources import (
    FIELD_MANAGER,
    FINALIZER,
    FINALIZER_BACKGROUND,
    NAMESPACE,
    TRACKING_ANNOTATION,
)

__all__ = ["FIELD_MANAGER", "FINALIZER", "FINALIZER_BACKGROUND", "NAMESPACE",
           "TRACKING_ANNOTATION", "ArgoCDStandin", "resource_health", "root_application",
           "start_argocd_standin"]
