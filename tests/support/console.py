"""The admin console as an operator's browser sees it, in-process: a client that keeps
cookies and sends the CSRF token of the last page it read, on an app of its own."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from argon2 import PasswordHasher

from tests.support.api import Api, asgi_client, make_settings, new_api
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
    "/admin/projects/shop/segments",
    "/admin/projects/shop/segments/gold",
    "/admin/projects/shop/webhooks",
    "/admin/projects/shop/webhooks/1",
    "/admin/users",
    "/admin/users/1",
    "/admin/audit",
]
"""Every page of the console (of a project ``shop``, its segment ``gold``, its webhook
endpoint 1 and a user 1)."""
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


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
        self.http = asgi_client(self.app, base, client=(address, 1))

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
    http = asgi_client(app, base_url, client=client)
    try:
        yield Browser(http, app, storage)
    finally:
        await http.aclose()
        app.stop()
