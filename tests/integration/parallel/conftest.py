"""The end-to-end world (PostgreSQL, registry and buildah, Vault, the real Kubernetes API server
with the Argo CD stand-in), shared with tests/integration/e2e rather than set up again."""

from tests.integration.e2e.conftest import (
    argocd,
    argocd_standin,
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

__all__ = ["argocd", "argocd_standin", "base_image", "buildah_storage", "builder",
           "cluster_target", "gitops", "kubeconfig", "make_repo", "pg_server", "registry",
           "vault_service", "world"]
