"""The client under test, sync or async behind one face, with retries fast enough for a
test suite."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.support.liveserver import Server
from userprops_client import AsyncClient, Client, RetryPolicy

# Retries fast enough for a test suite; a wait the server asks for is still honoured.
FAST = RetryPolicy(retries=3, backoff=0.01, max_backoff=0.05, max_wait=10.0)


class Either:
    """A :class:`Client` or an :class:`AsyncClient` behind one face, so that one test body
    covers both: every method is awaited (the sync client's in a thread) and
    each ``iter_*`` is collected into a list."""

    def __init__(self, client: Client | AsyncClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if isinstance(self.client, Client):
                if name.startswith("iter_"):
                    return await asyncio.to_thread(lambda: list(method(*args, **kwargs)))
                return await asyncio.to_thread(method, *args, **kwargs)
            if name.startswith("iter_"):
                return [item async for item in method(*args, **kwargs)]
            return await method(*args, **kwargs)

        return call

    async def new_user(self) -> int:
        """A fresh user's EUID."""
        value = uuid.uuid4().hex
        registered = await self.register("user_id", [value])
        return int(registered[value])


def make_client(
    kind: str, server: Server | None = None, *, base_url: str | None = None, **options: Any
) -> Client | AsyncClient:
    """A client of ``kind`` ("sync" or "async") with ``server``'s credentials (or dummy
    ones), at ``base_url`` (default: the server's), retrying fast unless told otherwise."""
    cls = Client if kind == "sync" else AsyncClient
    options.setdefault("retries", FAST)
    key, secret = (server.api_key, server.api_secret) if server else ("k" * 24, "s" * 24)
    url = base_url or (server.url if server else "")
    return cls(key, options.pop("secret", secret), base_url=url, **options)


@asynccontextmanager
async def either(kind: str, server: Server | None = None, **options: Any) -> AsyncIterator[Either]:
    """:func:`make_client`'s client behind :class:`Either`, closed on exit."""
    client = make_client(kind, server, **options)
    try:
        yield Either(client)
    finally:
        if isinstance(client, Client):
            client.close()
        else:
            await client.aclose()
