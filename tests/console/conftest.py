"""Fixtures of the admin console's tests: cheap password hashing in-process (the servers
these tests start use the real cost), a console on every backend, and a browser-like HTTP
client that keeps cookies and takes the CSRF token from each page it reads."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from conftest import Api, make_settings, new_api
from userprops import operators
from userprops.http.app import App
from userprops.storage import Storage

PASSWORD = "correct horse battery staple"
PAGES = [
    "/admin",
    "/admin/",
    "/admin/projects",
    "/admin/projects/shop",
    "/admin/projects/shop/datasources",
    "/admin/projects/shop/attributes",
    "/admin/projects/shop/users",
    "/admin/users",
    "/admin/users/1",
    "/admin/audit",
]
"""Every page of the console (of a project ``shop`` and a user 1)."""
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(operators, "_hasher", lambda: CHEAP)
    monkeypatch.setattr(operators, "_decoy", lambda: CHEAP.hash("decoy-password"))
    yield


@dataclass
class Browser:
    """An operator's browser, in-process: cookies kept, redirects not followed, and the
    CSRF token of the last page that had one sent with every form."""

    http: httpx.AsyncClient
    app: App
    storage: Storage
    csrf: str = ""
    pages: list[httpx.Response] = field(default_factory=list)

    def _seen(self, response: httpx.Response) -> httpx.Response:
        self.pages.append(response)
        found = _CSRF.search(response.text)
        if found:
            self.csrf = found[1]
        return response

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return self._seen(await self.http.get(path, params=params or None))

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: str | None = None, **kw: Any
    ) -> httpx.Response:
        form = {"csrf": self.csrf if csrf is None else csrf, **(data or {})}
        if csrf == "":
            del form["csrf"]
        return self._seen(await self.http.post(path, data=form, **kw))

    async def move_to(self, address: str) -> None:
        """Go on from another client address, without the cookies."""
        base = str(self.http.base_url)
        await self.http.aclose()
        transport = httpx.ASGITransport(app=self.app, client=(address, 1))
        self.http = httpx.AsyncClient(transport=transport, base_url=base)

    async def login(self, name: str = "alice", password: str = PASSWORD) -> httpx.Response:
        await self.get("/admin/login")
        return await self.post("/admin/login", {"name": name, "password": password})

    async def api(self, slug: str = "shop") -> Api:
        """An API client of a new project ``slug`` on the same app."""
        return await new_api(self.app, slug)


@asynccontextmanager
async def browser_on(
    storage_url: str,
    storage: Storage,
    *,
    base_url: str = "http://console.test",
    client: tuple[str, int] = ("127.0.0.1", 123),
    **settings: Any,
) -> AsyncIterator[Browser]:
    """A started app on ``storage`` with ``settings``, and a browser pointed at it."""
    app = App(make_settings(storage_url, auth_cache_ttl=0.0, **settings), storage)
    app.start()
    transport = httpx.ASGITransport(app=app, client=client)
    http = httpx.AsyncClient(transport=transport, base_url=base_url)
    try:
        yield Browser(http, app, storage)
    finally:
        await http.aclose()
        app.stop()


@pytest.fixture
def alice(storage: Storage) -> str:
    operators.create(storage, "alice", PASSWORD)
    return "alice"


@pytest.fixture
async def browser(storage_url: str, storage: Storage, alice: str) -> AsyncIterator[Browser]:
    """Not logged in yet; the operator ``alice`` exists."""
    async with browser_on(storage_url, storage) as b:
        yield b


@pytest.fixture
async def operator(browser: Browser) -> Browser:
    """``alice``, logged in."""
    answer = await browser.login()
    assert answer.status_code == 303, answer.text
    await browser.get("/admin/")  # for the session's CSRF token
    return browser
