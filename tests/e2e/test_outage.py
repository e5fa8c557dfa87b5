"""PostgreSQL going away under a running server: requests fail fast with the 503 envelope,
``/readyz`` says not ready, and the server recovers by itself when the database returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import httpx
import pytest

from tests.support.api import Api, api_over
from tests.support.pgcluster import Cluster, Databases

# Only a guard against hanging: the server answers within db_timeout (1 s here).
HANG_GUARD = 30.0


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[Api]:
    url = Databases(cluster.dsn()).create()
    async with api_over(url, db_timeout=1.0, auth_cache_ttl=0.0) as shop:
        yield shop


async def _within_guard(call: Awaitable[httpx.Response]) -> httpx.Response:
    return await asyncio.wait_for(call, HANG_GUARD)


async def test_requests_fail_fast_while_postgresql_is_down_and_recover_after(
    api: Api, cluster: Cluster
) -> None:
    [euid] = await api.register("u1")
    assert (await api.set(euid, "increase", {"visits": 1})).json()["code"] == 0

    await asyncio.to_thread(cluster.stop)
    write = await _within_guard(api.set(euid, "increase", {"visits": 1}))
    assert write.status_code == 503
    assert write.json()["code"] == 50300
    read = await _within_guard(api.get("/v1/user/property", euid=euid))
    assert (read.status_code, read.json()["code"]) == (503, 50300)
    ready = await _within_guard(api.http.get("/readyz"))
    assert (ready.status_code, ready.json()["code"]) == (503, 50300)

    await asyncio.to_thread(cluster.start)
    for _ in range(int(HANG_GUARD * 10)):  # the pool reconnects in the background
        if (await api.http.get("/readyz")).status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert (await api.http.get("/readyz")).json() == {"code": 0, "message": "ready"}
    assert (await api.set(euid, "increase", {"visits": 1})).json()["code"] == 0
    assert await api.props(euid) == {"visits": 2}  # the write during the outage: not applied
