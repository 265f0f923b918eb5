"""The one stand-in of the Git providers' REST APIs (GitHub, GitLab, Azure DevOps), which
cannot run here: :mod:`.status` for what envforge reports on a pull request (comments,
deployments, commit statuses, environments), :mod:`.publishing` for what its actions call
(repositories, pull/merge requests, GitHub webhooks in :mod:`.hooks`, Azure DevOps in
:mod:`.azure`). Each answers with the documented shapes, status codes and error bodies;
tests/integration/providers/test_conformance.py checks them against the providers' docs."""

from tests.standins.git_provider.publishing import ProviderStandIn
from tests.standins.git_provider.status import FakeProviderServer

__all__ = ["FakeProviderServer", "ProviderStandIn"]
