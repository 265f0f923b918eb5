"""The end-to-end world (PostgreSQL, registry and buildah, OpenBao, the real Kubernetes API server
with the real Argo CD), shared with tests/integration/e2e rather than set up again."""

from tests.integration.e2e.conftest import (
    argocd,
    base_image,
    buildah_storage,
    builder,
    cluster_target,
    gitops,
    kubeconfig,
    make_repo,
    pg_server,
    registry,
    vault_service,
    world,
)

__all__ = ["argocd", "base_image", "buildah_storage", "builder",
           "cluster_target", "gitops", "kubeconfig", "make_repo", "pg_server", "registry",
           "vault_service", "world"]
