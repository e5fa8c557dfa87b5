"""Disabling a data source or rotating its secret bites at once in the process that made
the change (docs/security.md, "Credentials"); other processes follow within
``auth_cache_ttl``. Disabling used to take up to the cache's 5 s everywhere."""

from __future__ import annotations

import asyncio
import base64
import threading

from tests.support.api import Api
from userprops import admin
from userprops.auth import Authenticator, Principal
from userprops.errors import AuthenticationFailed
from userprops.storage import Storage


def basic(key: str, secret: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{key}:{secret}".encode())


def storage_of(api: Api) -> Storage:
    assert api.app.services is not None
    return api.app.services.storage


async def status(api: Api, secret: str | None = None) -> int:
    headers = {"authorization": basic(api.api_key, secret or api.api_secret).decode()}
    r = await api.http.get("/v1/user/property", params={"euid": 1}, headers=headers)
    return r.status_code


async def test_disabling_a_data_source_bites_at_once(api: Api) -> None:
    await api.register("cached")
    assert await status(api) == 200  # verified, so cached for auth_cache_ttl (5 s)
    admin.set_datasource_enabled(storage_of(api), api.api_key, False)
    assert await status(api) == 401
    admin.set_datasource_enabled(storage_of(api), api.api_key, True)
    assert await status(api) == 200


async def test_rotating_a_secret_bites_at_once(api: Api) -> None:
    await api.register("cached")
    assert await status(api) == 200
    new = admin.rotate_secret(storage_of(api), api.api_key)
    assert await status(api) == 401
    assert await status(api, new) == 200


class ReadThenHeld(Authenticator):
    """Reads the data source, then waits for ``release`` before answering."""

    def __init__(self, storage: Storage) -> None:
        super().__init__(storage, ttl=60)
        self.read = threading.Event()
        self.release = threading.Event()

    def _lookup(self, key: str, secret: str) -> Principal:
        principal = super()._lookup(key, secret)
        self.read.set()
        self.release.wait(30)
        return principal


async def test_a_check_under_way_does_not_cache_what_it_read_before_a_change(api: Api) -> None:
    auth = ReadThenHeld(storage_of(api))
    header = basic(api.api_key, api.api_secret)
    check = asyncio.ensure_future(auth.authenticate(header, "10.0.0.9"))
    await asyncio.to_thread(auth.read.wait, 30)
    admin.set_datasource_enabled(storage_of(api), api.api_key, False)
    auth.release.set()
    await check  # it read an enabled data source; what it read is not kept
    auth.release.clear()
    auth.read.clear()
    second = asyncio.ensure_future(auth.authenticate(header, "10.0.0.9"))
    auth.release.set()
    try:
        await second
    except AuthenticationFailed:
        return
    raise AssertionError("a disabled data source's credentials were served from the cache")


async def test_only_canonical_headers_are_cached(api: Api) -> None:
    """A client holding a secret cannot fill the cache with 64 KiB variants of its header."""
    auth = Authenticator(storage_of(api), ttl=60)
    canonical = basic(api.api_key, api.api_secret)
    token = canonical.split(b" ")[1]
    for header in (b"basic " + token, b"Basic" + b" " * 60_000 + token, b"BASIC  " + token):
        assert (await auth.authenticate(header, "10.0.0.7")).api_key == api.api_key
        assert auth.cached(header) is None  # verified, answered, not kept
    await auth.authenticate(canonical, "10.0.0.7")
    assert auth.cached(canonical) is not None
