"""A request body that does not arrive in time is answered 408 and the connection closed;
one that arrives is served as usual."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.support.api import make_settings
from userprops.http.app import App
from userprops.storage import Storage


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/user/register",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }


async def _stalls() -> dict[str, Any]:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def _call(app: App, receive: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(), receive, send)
    return sent


async def test_a_body_that_never_arrives_is_answered_408_and_closed(
    storage_url: str, storage: Storage
) -> None:
    app = App(make_settings(storage_url, body_timeout=0.05), storage)
    app.start()
    try:
        start, body = await _call(app, _stalls)
    finally:
        app.stop()
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]
    assert json.loads(body["body"])["code"] == 40800


async def test_bodies_in_time_are_served_after_an_earlier_one_timed_out(
    storage_url: str, storage: Storage
) -> None:
    app = App(make_settings(storage_url, body_timeout=0.05), storage)
    app.start()

    async def arrives() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    try:
        stalled, prompt = await asyncio.gather(_call(app, _stalls), _call(app, arrives))
        later = await _call(app, arrives)
    finally:
        app.stop()
    assert stalled[0]["status"] == 408
    # No credentials: the request got past the body read to authentication.
    assert prompt[0]["status"] == 401
    assert later[0]["status"] == 401
