"""Opening the GitOps repository: URL and branch from configuration, credentials from a
Prefect ``GitCredentials`` block (HTTPS token via GIT_ASKPASS, or an SSH key via
GIT_SSH_COMMAND), never from the URL. The embedded local bare repository is the default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from envforge.connections import ConnectionSource
from envforge.core.config import ensure_embedded_gitops_repo, load_settings, settings_view
from envforge.core.secret_guard import SecretGuard
from envforge.git.publishing import Author, GitPublisher
from envforge.gitops.refresh import ClusterOpener
from envforge.gitops.settings import GitOpsSettings, gitops_settings, load_gitops_settings
from envforge.gitops.store import EnvironmentStore
from envforge.images.git_auth import GitAuth, git_environment
from envforge.services import Services


def credentials_from_block(block_name: str | None, connections: ConnectionSource | None
                           ) -> GitAuth | None:
    """The GitCredentials block's credentials, or None when no block is configured."""
    if not block_name:
        return None
    from envforge.images.build import resolve_git_auth

    return resolve_git_auth(block_name, connections)


@contextmanager
def open_store(
    url: str | None = None,
    branch: str | None = None,
    cache_root: Path | None = None,
    settings: GitOpsSettings | None = None,
    guard: SecretGuard | None = None,
    auth: GitAuth | None = None,
    services: Services | None = None,
) -> Iterator[EnvironmentStore]:
    """An EnvironmentStore for the configured (or given) repository. Credential files live
    only while the context is open. ``services`` (the composition root's) gives the settings,
    the connections that resolve ENVFORGE_GITOPS_BLOCK, the manifest checks and the secret
    scrubber; without them the process's settings and no server-side checks are used."""
    base = settings_view(services.settings) if services else load_settings()
    gitops = settings or (gitops_settings(services.settings) if services
                          else load_gitops_settings())
    if url is None:
        ensure_embedded_gitops_repo(base)
    connections = services.connections if services else None
    auth = auth or credentials_from_block(gitops.credentials_block, connections)
    if guard is None and services is not None:
        guard = SecretGuard((), services.scrub)
    with git_environment(auth) as env:
        publisher = GitPublisher(
            url=url or base.gitops_url,
            branch=branch or base.gitops_branch,
            cache_root=cache_root or base.cache_dir,
            author=Author("envforge", "envforge@localhost"),
            git_env=env,
            # lock timeout and push retry budget (ENVFORGE_GIT_PUSH_ATTEMPTS, ...)
            settings=services.settings.gitops if services else None,
        )
        yield EnvironmentStore(publisher, gitops, guard,
                               services.manifest_checks if services else (),
                               _default_cluster(services))


def _default_cluster(services: Services | None) -> ClusterOpener | None:
    """Opens the services' default cluster (unnamed KubernetesCluster: KUBECONFIG, in-cluster,
    ~/.kube/config) for the store's Argo CD refresh; None without services."""
    if services is None:
        return None
    connections = services.connections
    return lambda: connections.kubernetes_cluster(None)
