"""Where envforge keeps its state and finds its templates, from the environment.

ENVFORGE_HOME            state: caches, the embedded GitOps repository (default ~/.envforge)
ENVFORGE_TEMPLATES_PATH  template directories, separated by os.pathsep (default: the
                         project's templates/ directory)
ENVFORGE_GITOPS_URL      where publish steps push when a template names no repository
                         (default: a bare repository at $ENVFORGE_HOME/gitops.git)
ENVFORGE_GITOPS_BRANCH   branch of that repository (default main)
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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


def load_settings() -> Settings:
    """Settings from ENVFORGE_HOME, ENVFORGE_TEMPLATES_PATH and ENVFORGE_GITOPS_URL/BRANCH."""
    home = Path(os.environ.get("ENVFORGE_HOME") or Path.home() / ".envforge").expanduser()
    raw_paths = os.environ.get("ENVFORGE_TEMPLATES_PATH")
    if raw_paths:
        templates = tuple(Path(p).expanduser() for p in raw_paths.split(os.pathsep) if p)
    else:
        templates = (PROJECT_ROOT / "templates",)
    gitops_url = os.environ.get("ENVFORGE_GITOPS_URL") or ""
    if not gitops_url:
        gitops_url = (home / "gitops.git").as_uri()
    return Settings(
        home=home,
        templates_path=templates,
        gitops_url=gitops_url,
        gitops_branch=os.environ.get("ENVFORGE_GITOPS_BRANCH") or "main",
    )


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

    from envforge.git_boundary import subprocess_env  # git runs without hooks or repo config

    def git(*args: str, stdin: str | None = None) -> str:
        """Run git on the embedded repository as envforge; its stdout."""
        env = {**subprocess_env(), "GIT_AUTHOR_NAME": "envforge", "GIT_AUTHOR_EMAIL":
               "envforge@localhost", "GIT_COMMITTER_NAME": "envforge",
               "GIT_COMMITTER_EMAIL": "envforge@localhost"}
        done = subprocess.run(["git", "--git-dir", str(repo), *args], input=stdin, env=env,
                              check=True, capture_output=True, text=True)
        return done.stdout.strip()

    subprocess.run(["git", "init", "--quiet", "--bare", f"--initial-branch={branch}",
                    str(repo)], check=True, env=subprocess_env())
    blob = git("hash-object", "-w", "--stdin", stdin=README)
    # argocd/ exists from the start and outlives the last environment: the app-of-apps syncs
    # it, and Argo CD refuses a Directory app whose path is gone ("app path does not exist"),
    # so it would never prune the last environment's Application.
    keep = git("hash-object", "-w", "--stdin", stdin=ARGOCD_README)
    argocd = git("mktree", stdin=f"100644 blob {keep}\tREADME.md\n")
    tree = git("mktree", stdin=f"100644 blob {blob}\tREADME.md\n040000 tree {argocd}\targocd\n")
    commit = git("commit-tree", tree, "-m", "Initialise the GitOps repository")
    git("update-ref", f"refs/heads/{branch}", commit)
