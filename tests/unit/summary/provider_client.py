"""The one provider client on an httpx MockTransport, as the summary's unit tests use it: the
configured API base, a public address for every name, and no real sleeping between retries."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from envforge.capabilities import EgressPolicy, ProviderEndpoint
from envforge.capabilities.providers import ProviderClient

#: the waits the client asked for (instead of sleeping them)
SLEPT: list[float] = []


def mock_client(provider: str, token: str, api_url: str,
                handler: Callable[[httpx.Request], httpx.Response]) -> ProviderClient:
    endpoint = ProviderEndpoint.configure(provider, api_url=api_url, token=token)
    policy = EgressPolicy((), resolver=lambda host, port: ["140.82.112.6"],
                          transport=httpx.MockTransport(handler))
    return ProviderClient(endpoint, policy, what=f"{provider} test", sleep=SLEPT.append)
