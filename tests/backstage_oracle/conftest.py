"""One nunjucks oracle process for the session (see client.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backstage_oracle.client import Oracle


@pytest.fixture(scope="session")
def oracle() -> Iterator[Oracle]:
    instance = Oracle()
    yield instance
    instance.close()
