"""An authenticated HTTP client of one project, in-process over ASGI, and the app it talks
to."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from userprops import admin
from userprops.batcher import Batcher
from userprops.config import Settings
from userprops.http.app import App
from userprops.schema import SchemaMode


def asgi_client(
    app: Any, base_url: str = "http://test", *, client: tuple[str, int] = ("127.0.0.1", 123)
) -> httpx.AsyncClient:
    """An HTTP client of the ASGI ``app``, in-process, from the address ``client`` (httpx's
    default). (``app`` is Any: userprops' apps take their scope as a dict, where httpx's
    ASGI type offers a MutableMapping.)"""
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url=base_url)


def basic_auth(key: str, secret: str) -> dict[str, str]:
    """The ``authorization`` header of HTTP Basic with ``key`` and ``secret``."""
    token = base64.b64encode(f"{key}:{secret}".encode()).decode()
    return {"authorization": f"Basic {token}"}


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
        return basic_auth(self.api_key, self.api_secret)

    async def post(self, path: str, body: object) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.auth_header)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.auth_header)

    async def register(self, *values: str, name: str = "user_id") -> list[int]:
        r = await self.post(
            "/v1/user/register", {"identity_name": name, "identity_values": list(values)}
        )
        assert r.json()["code"] == 0, r.text
        return [item["euid"] for item in r.json()["data"]]

    async def set(
        self, euid: int, op: str, properties: Mapping[str, object], timestamp: object = None
    ) -> httpx.Response:
        """``POST /v1/user/property``; ``timestamp`` is sent unless None."""
        body = {"euid": euid, "type": op, "properties": properties}
        if timestamp is not None:
            body["timestamp"] = timestamp
        return await self.post("/v1/user/property", body)

    async def props(self, euid: int) -> dict[str, object]:
        r = await self.get("/v1/user/property", euid=euid)
        assert r.json()["code"] == 0, r.text
        return r.json()["data"]["properties"]  # type: ignore[no-any-return]


def make_settings(storage_url: str, **overrides: object) -> Settings:
    return Settings(database=storage_url).replace(**overrides)


async def new_api(
    app: App, slug: str, schema: SchemaMode = SchemaMode.AUTO, tz: str = "UTC"
) -> Api:
    assert app.services is not None
    storage = app.services.storage
    admin.create_project(storage, slug, schema, tz)
    creds = admin.create_datasource(storage, slug, "test")
    return Api(asgi_client(app), app, slug, creds.datasource.api_key, creds.api_secret)


@asynccontextmanager
async def api_over(
    storage_url: str, storage: Any = None, **overrides: object
) -> AsyncIterator[Api]:
    """An :class:`Api` of a new project ``shop``, on an app started with the settings
    ``overrides`` over ``storage`` (for example the real storage wrapped to hold or fail a
    batch), or else over a storage of its own at ``storage_url``."""
    application = App(make_settings(storage_url, **overrides), storage)
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
