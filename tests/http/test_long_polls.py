"""One data source holds at most MAX_LONG_POLLS long polls of the change feed at once
(docs/security.md, "What one client can make the server do")."""

from __future__ import annotations

import asyncio

from tests.support.api import Api, new_api
from userprops.history import MAX_LONG_POLLS


async def test_a_data_source_holds_a_bounded_number_of_long_polls(api: Api) -> None:
    feed = api.app.services.engine.feed  # type: ignore[union-attr]
    polls = [asyncio.ensure_future(api.get("/v1/changes", wait=30)) for _ in range(MAX_LONG_POLLS)]
    while feed.waiting() < MAX_LONG_POLLS:  # every one of them is held
        await asyncio.sleep(0.01)
    refused = await api.get("/v1/changes", wait=30)
    assert (refused.status_code, refused.json()["code"]) == (429, 42900)
    assert refused.headers["retry-after"] == "1"
    assert "long polls" in refused.json()["message"]
    assert (await api.get("/v1/changes")).status_code == 200  # no wait: not a long poll
    other = await new_api(api.app, "other")
    try:
        held = asyncio.ensure_future(other.get("/v1/changes", wait=30))
        while feed.waiting() < MAX_LONG_POLLS + 1:  # another data source is not refused
            await asyncio.sleep(0.01)
        [euid] = await api.register("u")
        assert (await api.set(euid, "set", {"a": 1})).json()["code"] == 0
        answers = await asyncio.gather(*polls)
        assert all(len(r.json()["data"]["changes"]) == 1 for r in answers)
        [euid] = await other.register("v")
        assert (await other.set(euid, "set", {"b": 1})).json()["code"] == 0
        assert (await held).status_code == 200
    finally:
        await other.http.aclose()
    again = asyncio.ensure_future(api.get("/v1/changes", after=1, wait=30))
    while feed.waiting() < 1:  # released: it may hold long polls again
        await asyncio.sleep(0.01)
    [euid] = await api.register("w")
    assert (await api.set(euid, "set", {"c": 1})).json()["code"] == 0
    assert (await again).status_code == 200
