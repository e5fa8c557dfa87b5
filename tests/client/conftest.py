"""The client's tests run against a real ``userprops serve``: one server for the package,
and each test's own users."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.clients import Either, either
from tests.support.liveserver import Server, live_server


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with live_server(tmp_path_factory.mktemp("client")) as running:
        yield running


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def up(kind: str, server: Server) -> AsyncIterator[Either]:
    """The package's server through each client in turn."""
    async with either(kind, server) as client:
        yield client
