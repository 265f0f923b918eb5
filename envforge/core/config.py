"""Where envforge keeps its state, finds its templates and publishes: a view of the settings.

:class:`Settings` is the part of :class:`envforge.settings.EnvforgeSettings` most modules need
(home, template directories, the GitOps repository and branch), flattened; the values and their
variables (ENVFORGE_HOME, ENVFORGE_TEMPLATES_PATH, ENVFORGE_GITOPS_URL, ENVFORGE_GITOPS_BRANCH)
are described once, in envforge/settings.py (docs/settings.md). This module also creates the
embedded GitOps repository the default URL points at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from envforge.settings import PROJECT_ROOT, EnvforgeSettings
from envforge.settings import load_settings as load_envforge_settings

__all__ = ["PROJECT_ROOT", "Settings", "ensure_embedded_gitops_repo", "load_settings",
           "settings_view"]


@dataclass(frozen=True)
class Settings:
    """Where envforge keeps its state, finds templates and publishes GitOps changes."""
    home: Path
    templates_path: tuple[Path, ...]
    gitops_url: str
    gitops_branch: str

    @property
    def cache_dir(self) -> Path:
        """Caches (Git working copies, mirrors) under the envforge home."""
        return self.home / "cache"

    @property
    def embedded_gitops_repo(self) -> Path:
        """The local bare repository used when no ENVFORGE_GITOPS_URL is set."""
        return self.home / "gitops.git"


def settings_view(settings: EnvforgeSettings) -> Settings:
    """The paths and GitOps repository of ``settings``."""
    return Settings(home=settings.paths.home, templates_path=settings.paths.templates_path,
                    gitops_url=settings.gitops_url, gitops_branch=settings.gitops.branch)


def load_settings() -> Settings:
    """The view of the process's settings (ENVFORGE_HOME, ENVFORGE_TEMPLATES_PATH,
    ENVFORGE_GITOPS_URL/BRANCH)."""
    return settings_view(load_envforge_settings())


README = """# envforge GitOps repository

Written by envforge: `environments/<name>/` holds each environment's record and manifests,
`services/<name>/` what the service templates render. Argo CD syncs this repository.
"""


ARGOCD_README = """# Argo CD Applications

One file per environment, synced by the app-of-apps (path `argocd`, no recursion, prune).
"""


def ensure_embedded_gitops_repo(settings: Settings) -> None:
    """Create the embedded default GitOps repository (a local bare repository) if missing,
    with a first commit, so every later commit has a parent and can be rolled back cleanly."""
    repo = settings.embedded_gitops_repo
    if settings.gitops_url != repo.as_uri() or (repo / "HEAD").exists():
        return
    repo.parent.mkdir(parents=True, exist_ok=True)
    branch = settings.gitops_branch

    from envforge.core.git_boundary import run_git  # git runs without hooks or repo config

    author = {"GIT_AUTHOR_NAME": "envforge", "GIT_AUTHOR_EMAIL": "envforge@localhost",
              "GIT_COMMITTER_NAME": "envforge", "GIT_COMMITTER_EMAIL": "envforge@localhost"}

    def git(*args: str, stdin: str | None = None) -> str:
        """Run git on the embedded repository as envforge; its stdout."""
        return run_git(["--git-dir", str(repo), *args], stdin=stdin, extra_env=author)

    run_git(["init", "--quiet", "--bare", f"--initial-branch={branch}", str(repo)])
    blob = git("hash-object", "-w", "--stdin", stdin=README)
    # argocd/ exists from the start and outlives the last environment: the app-of-apps syncs
    # it, and Argo CD refuses a Directory app whose path is gone ("app path does not exist"),
    # so it would never prune the last environment's Application.
    keep = git("hash-object", "-w", "--stdin", stdin=ARGOCD_README)
    argocd = git("mktree", stdin=f"100644 blob {keep}\tREADME.md\n")
    tree = git("mktree", stdin=f"100644 blob {blob}\tREADME.md\n040000 tree {argocd}\targocd\n")
    commit = git("commit-tree", tree, "-m", "Initialise the GitOps repository")
    git("update-ref", f"refs/heads/{branch}", commit)
