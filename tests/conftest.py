"""Shared fixtures: a storage per backend, a started app, and an authenticated client.

``storage_url`` is the one place that lists backends; every fixture above it runs on each.
"""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pgcluster import Cluster, Databases
from userprops import admin
from userprops.batcher import Batcher
from userprops.config import Settings
from userprops.http.app import App
from userprops.schema import SchemaMode
from userprops.storage import Storage, open_storage


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[Databases]:
    """Databases on the server of USERPROPS_TEST_POSTGRES_DSN, or else on a throwaway
    PostgreSQL cluster started for this test session."""
    dsn = os.environ.get("USERPROPS_TEST_POSTGRES_DSN")
    if dsn:
        databases = Databases(dsn)
        yield databases
        databases.close()
        return
    cluster = Cluster()
    try:
        cluster.start()
        yield Databases(cluster.dsn())
    finally:
        cluster.destroy()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this test's own, for a test that stops or freezes it."""
    own = Cluster()
    own.start()
    yield own
    own.destroy()


@pytest.fixture
def pg_url(pg_databases: Databases) -> Iterator[str]:
    """An empty PostgreSQL database of its own."""
    url = pg_databases.create()
    yield url
    pg_databases.release(url)


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def storage(storage_url: str) -> Iterator[Storage]:
    store = open_storage(storage_url)
    store.migrate()
    yield store
    store.close()


@dataclass
class Api:
    """An authenticated HTTP client of one project, in-process over ASGI."""

    http: httpx.AsyncClient
    app: App
    project: str
    api_key: str
    api_secret: str

    @property
    def auth_header(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.api_key}:{self.api_secret}".encode()).decode()
        return {"authorization": f"Basic {token}"}

    async def post(self, path: str, body: object) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.auth_header)

    async def get(self, path: str, **params: object) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.auth_header)

    async def register(self, *values: str, name: str = "user_id") -> list[int]:
        r = await self.post(
            "/v1/user/register", {"identity_name": name, "identity_values": list(values)}
        )
        assert r.json()["code"] == 0, r.text
        return [item["euid"] for item in r.json()["data"]]

    async def set(self, euid: int, op: str, properties: dict[str, object]) -> httpx.Response:
        return await self.post(
            "/v1/user/property", {"euid": euid, "type": op, "properties": properties}
        )

    async def props(self, euid: int) -> dict[str, object]:
        r = await self.get("/v1/user/property", euid=euid)
        assert r.json()["code"] == 0, r.text
        return r.json()["data"]["properties"]  # type: ignore[no-any-return]


def make_settings(storage_url: str, **overrides: object) -> Settings:
    return Settings(database=storage_url).replace(**overrides)


@pytest.fixture
def settings(storage_url: str) -> Settings:
    return make_settings(storage_url)


@pytest.fixture
async def app(settings: Settings, storage: Storage) -> AsyncIterator[App]:
    application = App(settings, storage)
    application.start()
    yield application
    application.stop()


async def new_api(
    app: App, slug: str, schema: SchemaMode = SchemaMode.AUTO, tz: str = "UTC"
) -> Api:
    assert app.services is not None
    storage = app.services.storage
    admin.create_project(storage, slug, schema, tz)
    creds = admin.create_datasource(storage, slug, "test")
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return Api(http, app, slug, creds.datasource.api_key, creds.api_secret)


@pytest.fixture
async def api(app: App) -> AsyncIterator[Api]:
    client = await new_api(app, "shop")
    yield client
    await client.http.aclose()


@pytest.fixture
async def strict_api(app: App) -> AsyncIterator[Api]:
    client = await new_api(app, "strict", SchemaMode.STRICT)
    yield client
    await client.http.aclose()


@asynccontextmanager
async def api_over(storage_url: str, storage: Any) -> AsyncIterator[Api]:
    """An :class:`Api` of a new project, on an app started over ``storage`` (for example
    the real storage wrapped to hold or fail a batch)."""
    application = App(make_settings(storage_url), storage)
    application.start()
    client = await new_api(application, "shop")
    try:
        yield client
    finally:
        await client.http.aclose()
        application.stop()


async def queued_behind(
    entered: threading.Event,
    release: threading.Event,
    batcher: Batcher[Any] | None,
    first: Awaitable[Any],
    *rest: Awaitable[Any],
) -> list[Any]:
    """Await ``first`` alone in a batch held until ``release`` (its storage sets
    ``entered`` when it holds), queue ``rest`` behind it, then let both batches go; the
    answers, in order."""
    assert batcher is not None
    leader = asyncio.ensure_future(first)
    await asyncio.to_thread(entered.wait)
    followers = [asyncio.ensure_future(c) for c in rest]
    while batcher.waiting() < len(rest):
        await asyncio.sleep(0.001)
    release.set()
    return await asyncio.gather(leader, *followers)
