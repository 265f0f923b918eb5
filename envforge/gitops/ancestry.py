"""Whether one commit of the GitOps repository contains another (descends from it).

Argo CD reports the revision it synced: the branch head when it last looked. On a busy GitOps
repository that is often a later commit than the one envforge pushed (another environment's
change landed meanwhile), and it still contains envforge's change; waiting for equality would
wait until the deadline and roll a healthy environment back. The question is answered by Git
itself, in envforge's cached working copy of the repository (``git merge-base --is-ancestor``).
"""

from __future__ import annotations

from pathlib import Path

from envforge.core.git_boundary import git_succeeds
from envforge.gitops.repository import open_store


def is_ancestor(root: Path, earlier: str, later: str) -> bool:
    """In the working copy at ``root``: is ``earlier`` ``later`` or one of its ancestors?
    False when either commit is unknown there."""
    return git_succeeds(["merge-base", "--is-ancestor", earlier, later], cwd=root, timeout=60)


def commit_contains(repo_url: str, branch: str, later: str, earlier: str) -> bool:
    """Whether ``later`` contains ``earlier`` in the repository Argo CD reads (fetched first,
    so a commit pushed by someone else is known; without the writers' lock)."""
    with open_store(url=repo_url, branch=branch) as store:
        return store.publisher.read_newest(lambda snapshot: snapshot.contains(later, earlier))
