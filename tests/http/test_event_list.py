"""GET /v1/event/list: newest first, time range, limit and cursor pagination."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api


async def report_at(api: Api, euid: int, *itimes: int) -> None:
    data = [{"euid": euid, "event_name": f"e{t}", "itime": t} for t in itimes]
    r = await api.post("/v1/event/report", {"data": data})
    assert r.json()["code"] == 0, r.text


async def page(api: Api, euid: int, **params: object) -> dict[str, Any]:
    r = await api.get("/v1/event/list", euid=euid, **params)
    assert r.json()["code"] == 0, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def times(data: dict[str, Any]) -> list[int]:
    return [e["itime"] for e in data["events"]]


async def test_events_come_newest_first_whatever_the_order_reported(api: Api) -> None:
    [euid] = await api.register("u1")
    await report_at(api, euid, 2000, 1000, 3000)
    data = await page(api, euid)
    assert times(data) == [3000, 2000, 1000]
    assert data["next_cursor"] is None
    assert data["euid"] == euid


async def test_events_of_one_itime_come_latest_reported_first(api: Api) -> None:
    [euid] = await api.register("u1")
    for name in ("first", "second"):
        await api.post(
            "/v1/event/report", {"data": [{"euid": euid, "event_name": name, "itime": 5}]}
        )
    assert [e["event_name"] for e in (await page(api, euid))["events"]] == ["second", "first"]


async def test_a_user_without_events_has_an_empty_list(api: Api) -> None:
    [euid] = await api.register("u1")
    assert await page(api, euid) == {"euid": euid, "events": [], "next_cursor": None}


async def test_only_the_users_own_events_are_listed(api: Api) -> None:
    mine, theirs = await api.register("u1", "u2")
    await report_at(api, mine, 1)
    await report_at(api, theirs, 2)
    assert times(await page(api, mine)) == [1]


async def test_from_is_inclusive_and_to_exclusive(api: Api) -> None:
    [euid] = await api.register("u1")
    await report_at(api, euid, 1000, 2000, 3000, 4000)
    assert times(await page(api, euid, **{"from": 2000, "to": 4000})) == [3000, 2000]
    assert times(await page(api, euid, **{"from": 3000})) == [4000, 3000]
    assert times(await page(api, euid, to=2000)) == [1000]


async def test_cursor_walks_every_event_once(api: Api) -> None:
    [euid] = await api.register("u1")
    await report_at(api, euid, *range(1, 8), 4, 4)
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        data = await page(api, euid, **params)
        seen += times(data)
        pages += 1
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert seen == [7, 6, 5, 4, 4, 4, 3, 2, 1]
    assert pages == 5


async def test_cursor_is_stable_while_newer_events_arrive(api: Api) -> None:
    [euid] = await api.register("u1")
    await report_at(api, euid, 1, 2, 3)
    first = await page(api, euid, limit=2)
    await report_at(api, euid, 10)
    rest = await page(api, euid, limit=2, cursor=first["next_cursor"])
    assert times(first) + times(rest) == [3, 2, 1]


async def test_cursor_keeps_the_time_range(api: Api) -> None:
    [euid] = await api.register("u1")
    await report_at(api, euid, 1, 2, 3, 4)
    first = await page(api, euid, limit=1, to=4)
    rest = await page(api, euid, limit=5, to=4, **{"from": 2}, cursor=first["next_cursor"])
    assert times(first) + times(rest) == [3, 2]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, 40007),
        ({"euid": ""}, 40007),
        ({"euid": "x"}, 55004),
        ({"euid": "1", "limit": "0"}, 55004),
        ({"euid": "1", "limit": "501"}, 55004),
        ({"euid": "1", "limit": "ten"}, 55004),
        ({"euid": "1", "from": "yesterday"}, 55004),
        ({"euid": "1", "to": "1.5"}, 55004),
        ({"euid": "1", "from": ""}, 55004),  # given empty: not a number, not absent
        ({"euid": "1", "limit": ""}, 55004),
        ({"euid": "1", "cursor": "not-a-cursor"}, 55004),
        ({"euid": "1", "cursor": "MToxOg"}, 55004),
        ({"euid": "1", "cursor": "%%%"}, 55004),
    ],
)
async def test_bad_query_parameters(api: Api, params: dict[str, str], code: int) -> None:
    r = await api.http.get("/v1/event/list", params=params, headers=api.auth_header)
    assert r.status_code == 400
    assert r.json()["code"] == code


async def test_unknown_euid_is_404(api: Api) -> None:
    r = await api.get("/v1/event/list", euid=424242)
    assert (r.status_code, r.json()["code"]) == (404, 40404)


async def test_list_needs_credentials(api: Api) -> None:
    r = await api.http.get("/v1/event/list", params={"euid": 1})
    assert (r.status_code, r.json()["code"]) == (401, 40050)
