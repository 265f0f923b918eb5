"""Where a template's output belongs in the GitOps repository, declared once and enforced for
every writing action.

    services/<service>/...          a scaffold (publish:git): one service, a DNS label
    environments/<env>/...          an environment (publish:gitops, or publish:git below it)
    argocd/<env>.yaml               the environment's Argo CD Application (publish:gitops)

Never ``.git`` (the working copy's metadata: hooks would run on the next command), never a
shared top-level folder (``environments``, ``argocd``, ``services`` themselves: a replace there
deletes every environment), never another environment's path, never a service another template
made. ``templates validate`` reports a target outside its scope when it is known without
running; a run refuses it before the repository is changed.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from envforge.capabilities import is_git_name
from envforge.core.git_boundary import run_git
from envforge.core.names import is_dns_label
from envforge.core.paths import safe_relative
from envforge.errors import GitError, PathEscapeError, PublishScopeError

SERVICES = "services"
ENVIRONMENTS = "environments"
APPLICATIONS = "argocd"
#: The Environment record: written by publish:gitops only, never replaced by a raw publish.
RECORD_FILE = "environment.yaml"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def path_problem(target: str) -> str | None:
    """What makes ``target`` unfit for any repository (GitOps or not), or None."""
    if _CONTROL.search(target):
        return "it contains a control character (a newline?)"
    try:
        parts = safe_relative(target, "repository").parts
    except PathEscapeError as e:  # '..' or absolute
        return str(e).split(": use ")[0]
    if any(is_git_name(part) for part in parts):  # .GIT, ".git ", git~1, zero-width chars
        return "'.git' is the repository's own metadata, never a template's output"
    return None


def gitops_scope_problem(target: str, environment: str | None) -> str | None:
    """What puts ``target`` (a publish:git targetPath in the GitOps repository) outside the
    run's scope, or None. ``environment`` is the run's environment name, if it has one."""
    problem = path_problem(target)
    if problem:
        return problem
    parts = safe_relative(target, "repository").parts
    if not parts:
        return "the repository root holds every environment and service"
    top = parts[0]
    if top == SERVICES:
        if len(parts) < 2:
            return f"'{SERVICES}' is shared by every service: publish under {SERVICES}/<name>/"
        if not is_dns_label(parts[1]):
            return (f"service name {parts[1]!r} is not a DNS label (lower-case letters, "
                    "digits, '-')")
        return None
    if top == ENVIRONMENTS:
        if len(parts) < 3:
            return (f"{'/'.join(parts)!r} is the whole of an environment (or of all of them): "
                    f"publish under {ENVIRONMENTS}/<environment>/<folder>/, or use "
                    "publish:gitops")
        if environment is not None and parts[1] != environment:
            return (f"it belongs to environment {parts[1]!r}, and this run's environment is "
                    f"{environment!r}")
        if environment is None and not is_dns_label(parts[1]):
            return f"environment name {parts[1]!r} is not a DNS label"
        if parts[2] == RECORD_FILE:
            return "the Environment record is written by publish:gitops only"
        return None
    return (f"top-level folder {top!r} is not a template's: publish under "
            f"{SERVICES}/<name>/ (a scaffold) or {ENVIRONMENTS}/<environment>/ (an environment)")


def check_gitops_target(step_id: str, action_id: str, target: str,
                        environment: str | None) -> None:
    """Raise PublishScopeError (one line: step, targetPath, why, what to do) when ``target``
    is outside the run's scope in the GitOps repository."""
    problem = gitops_scope_problem(target, environment)
    if problem:
        raise PublishScopeError(step_id, action_id, target, problem)


def check_target(step_id: str, action_id: str, target: str) -> None:
    """Raise PublishScopeError when ``target`` is unfit for any repository."""
    problem = path_problem(target)
    if problem:
        raise PublishScopeError(step_id, action_id, target, problem)


def check_environment_paths(name: str, paths: list[str]) -> None:
    """Refuse a GitOps write of environment ``name`` that touches anything but its own
    ``environments/<name>/`` and ``argocd/<name>.yaml`` (a guard on publish:gitops' own
    rendering, so a manifest file name cannot reach out)."""
    own_dir = PurePosixPath(ENVIRONMENTS, name)
    own_app = PurePosixPath(APPLICATIONS, f"{name}.yaml")
    for rel in paths:
        problem = path_problem(rel)
        pure = PurePosixPath(rel)
        if problem is None and not (pure in (own_app, own_dir) or own_dir in pure.parents):
            problem = f"it is outside {own_dir}/ and {own_app}"
        if problem:
            raise PublishScopeError(f"environment {name}", "publish:gitops", rel, problem)


def service_owner(root: Path, service_dir: str) -> str | None:
    """The template that last committed under ``service_dir`` (its Envforge-Template
    trailer), or None when nothing there was committed by a template."""
    try:
        out = run_git(["log", "-1", "--format=%(trailers:key=Envforge-Template,valueonly)",
                       "--", service_dir], cwd=root, timeout=60)
    except GitError:
        return None
    return out.strip() or None


def check_service_owner(root: Path, step_id: str, target: str, template: str) -> None:
    """Refuse to publish into ``services/<name>/`` when another template made it."""
    parts = PurePosixPath(target).parts
    if len(parts) < 2 or parts[0] != SERVICES:
        return
    service_dir = f"{SERVICES}/{parts[1]}"
    if not (root / service_dir).exists():
        return
    owner = service_owner(root, service_dir)
    if owner is not None and owner != template:
        raise PublishScopeError(
            step_id, "publish:git", target,
            f"{service_dir} belongs to template {owner!r}, not {template!r}; pick another "
            "service name")
