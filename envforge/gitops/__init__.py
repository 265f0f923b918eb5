"""Environments as files in a GitOps repository that Argo CD syncs.

``record`` (the Environment record), ``ttl`` and ``naming`` (inputs and derived names),
``render`` with ``platform``, ``argocd`` and ``domains`` (files of one environment, custom
hosts' Ingresses), ``validate`` and ``guard`` (checks before a commit), ``store``
(create/list/show/update/extend/destroy, bind/unbind a custom host, through GitPublisher),
``repository`` (configuration and credentials), ``actions`` (publish:gitops).
"""

from envforge.gitops.record import EnvironmentRecord
from envforge.gitops.repository import open_store
from envforge.gitops.store import ChangeResult, EnvironmentStore

__all__ = ["ChangeResult", "EnvironmentRecord", "EnvironmentStore", "open_store"]
