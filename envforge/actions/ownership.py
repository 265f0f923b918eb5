"""Which namespace a step may write into: the one of the environment the run belongs to.

A run's environment comes from the flow that started it (``ctx.environment``): an environment's
own create or update run, or a run whose caller named an environment (the run-template flow's
``environment`` parameter: a claim, marked :data:`CLAIMED_ENVIRONMENT`). A template's inputs
never choose it: a scaffold run (no environment) writes into no namespace, a step's
``environment``/``namespace`` inputs must name the run's own, and a claimed run uses only a
namespace it made itself (annotated :data:`ANNOTATION_MADE_BY_RUN`), never one that was there
before it (another environment's). Every action that writes into a cluster namespace
(vault:secrets / kubernetes:secret, db:container) asks here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from envforge.actions.base import ActionContext
from envforge.core.names import RESERVED_NAMES

#: set in a run's environment when its caller named the environment
CLAIMED_ENVIRONMENT = "claimedByCaller"
#: the run that created a namespace
ANNOTATION_MADE_BY_RUN = "envforge.dev/made-by-run"


def check_environment_namespace(ctx: ActionContext, environment: str, namespace: str | None,
                                where: str, error: type[Exception]) -> str:
    """The namespace ``where`` (a step) may write into, or ``error`` saying why not."""
    run_env = ctx.environment.get("name")
    own = str(ctx.environment.get("namespace") or run_env or environment)
    if not run_env and not ctx.dry_run:
        # the namespace comes from the environment the run belongs to, never from a
        # scaffold's parameters (--set name=victim-env named another environment's)
        raise error(
            f"{where}: this run belongs to no environment (a scaffold run), so it has no "
            "namespace of its own to write into; a parameter never chooses one: "
            "run it as an environment's run (envforge env create / update)")
    if run_env and environment != run_env:
        raise error(
            f"{where}: input.environment {environment!r} is not this run's environment "
            f"{run_env!r}; a step writes only into the environment being deployed "
            "(use ${{ environment.name }})")
    wanted = namespace or own
    if wanted != own:
        raise error(
            f"{where}: input.namespace {wanted!r} is not the environment's own namespace "
            f"{own!r}; a step writes only there (remove input.namespace)")
    if wanted in RESERVED_NAMES or wanted.startswith("kube-"):
        raise error(
            f"{where}: namespace {wanted!r} is a system namespace; a step writes only into an "
            "environment's own namespace")
    return wanted


def is_claimed(environment: Mapping[str, Any]) -> bool:
    """The run's caller named its environment (see the module's docstring)."""
    return bool(environment.get(CLAIMED_ENVIRONMENT))


def made_by_run_annotations(run_id: str) -> dict[str, str]:
    """The annotations of a namespace a run creates."""
    return {ANNOTATION_MADE_BY_RUN: run_id} if run_id else {}


def check_existing_namespace(found: Any, namespace: str, environment: str, run_id: str,
                             claimed: bool, error: type[Exception]) -> None:
    """A namespace that exists may be used by a claimed run only if that run made it."""
    if not claimed:
        return
    annotations = getattr(getattr(found, "metadata", None), "annotations", None) or {}
    if not run_id or annotations.get(ANNOTATION_MADE_BY_RUN) != run_id:
        raise error(
            f"namespace {namespace} exists and this run did not make it: a run whose caller "
            f"named environment {environment!r} writes only into a namespace it creates; "
            f"change an existing environment with 'envforge env update {environment}'")


#: who manages the objects envforge makes for an environment, and which environment
LABEL_ENVIRONMENT = "envforge.dev/environment"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"


def environment_labels(environment: str) -> dict[str, str]:
    """The labels of what envforge makes for ``environment`` (destroy finds them by these)."""
    return {LABEL_ENVIRONMENT: environment, LABEL_MANAGED_BY: "envforge"}


def ensure_environment_namespace(
        core: Any, namespace: str, environment: str, run_id: str, claimed: bool,
        error: type[Exception], timeout: float,
        guarded: Callable[[str], AbstractContextManager[None]]) -> bool:
    """Create the environment's namespace if missing (labelled, annotated with the run that
    made it); True when this call created it. One that exists is used, but by a claimed run
    only if that run made it (:func:`check_existing_namespace`); one created meanwhile by
    someone else is not this call's to remove. ``core`` is a CoreV1Api; ``guarded(doing)`` the
    caller's Kubernetes error mapping (envforge.core.kubernetes_boundary)."""
    from kubernetes.client.exceptions import ApiException

    with guarded(f"read namespace {namespace}"):
        try:
            found = core.read_namespace(namespace, _request_timeout=timeout)
        except ApiException as e:
            if e.status != 404:
                raise
            found = None
    if found is not None:
        check_existing_namespace(found, namespace, environment, run_id, claimed, error)
        return False
    body = {"metadata": {"name": namespace, "labels": environment_labels(environment),
                         "annotations": made_by_run_annotations(run_id)}}
    with guarded(f"create namespace {namespace}"):
        try:
            core.create_namespace(body, _request_timeout=timeout)
        except ApiException as e:
            if e.status != 409:
                raise
            check_existing_namespace(None, namespace, environment, run_id, claimed, error)
            return False
    return True
