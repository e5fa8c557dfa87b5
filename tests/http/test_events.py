"""POST /v1/event/report, through HTTP, read back with GET /v1/event/list."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.support.api import Api, new_api
from userprops.http.app import App

ITIME = 1_654_076_420_772


def event(euid: int, name: str = "sign_up", **fields: Any) -> dict[str, Any]:
    return {"euid": euid, "event_name": name, "itime": fields.pop("itime", ITIME), **fields}


async def report(api: Api, *events: object, app_key: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"data": list(events)}
    if app_key is not None:
        body["app_key"] = app_key
    return await api.post("/v1/event/report", body)


async def events_of(api: Api, euid: int, **params: object) -> list[dict[str, Any]]:
    r = await api.get("/v1/event/list", euid=euid, **params)
    assert r.json()["code"] == 0, r.text
    return r.json()["data"]["events"]  # type: ignore[no-any-return]


async def test_reported_events_are_stored_and_read_back(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await report(
        api,
        event(
            euid,
            random_id="5b102148-0d28-4a6a-8658-483f7d1c735e",
            properties={"plan": "a", "amount": 2, "paid": True, "tags": ["x", "y"]},
        ),
        app_key="96441e4d73207a6517abfbbc",
    )
    assert (r.status_code, r.json()) == (200, {"code": 0, "message": "success"})
    assert await events_of(api, euid) == [
        {
            "event_name": "sign_up",
            "itime": ITIME,
            "random_id": "5b102148-0d28-4a6a-8658-483f7d1c735e",
            "app_key": "96441e4d73207a6517abfbbc",
            "properties": {"plan": "a", "amount": 2, "paid": True, "tags": ["x", "y"]},
        }
    ]


async def test_properties_are_optional(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await report(api, event(euid, "login"), event(euid, "logout", properties={}))
    assert r.json()["code"] == 0
    assert [e["properties"] for e in await events_of(api, euid)] == [{}, {}]


async def test_null_properties_count_as_none(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await report(api, event(euid, properties=None))
    assert r.json()["code"] == 0
    assert [e["properties"] for e in await events_of(api, euid)] == [{}]


async def test_decimal_and_datetime_properties_read_back_exactly(app: App) -> None:
    api = await new_api(app, "tz", tz="Asia/Shanghai")
    try:
        [euid] = await api.register("u1")
        props = {"price": 0.1, "at": "2024-01-02 03:04:05", "ms": 1}
        r = await report(api, event(euid, "buy", properties=props))
        assert r.json()["code"] == 0
        [stored] = await events_of(api, euid)
        assert stored["properties"] == {"price": 0.1, "at": "2024-01-02T03:04:05+08:00", "ms": 1}
        assert '"price":0.1' in (await api.get("/v1/event/list", euid=euid)).text
    finally:
        await api.http.aclose()


async def test_a_bad_event_is_reported_by_index_and_the_rest_stored(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await report(api, event(euid, "ok_one"), event(euid, "Bad-Name"), event(euid, "ok_two"))
    assert r.status_code == 200
    body = r.json()
    assert body["code"] == 0
    assert body["message"].startswith("partial success")
    [item] = body["errors"]
    assert (item["index"], item["code"]) == (1, 55004)
    assert {e["event_name"] for e in await events_of(api, euid)} == {"ok_one", "ok_two"}


MISSING = object()
BAD_EVENTS: list[tuple[str, object, int]] = [
    ("not an object", "sign_up", 55004),
    ("euid missing", {"euid": MISSING}, 40007),
    ("euid null", {"euid": None}, 40007),
    ("euid empty", {"euid": ""}, 40007),
    ("euid a string", {"euid": "1"}, 55004),
    ("euid zero", {"euid": 0}, 55004),
    ("euid unknown", {"euid": 987_654_321}, 40404),
    ("event_name missing", {"event_name": MISSING}, 55004),
    ("event_name a number", {"event_name": 5}, 55004),
    ("event_name uppercase", {"event_name": "Login"}, 55004),
    ("event_name too long", {"event_name": "e" * 129}, 55004),
    ("itime missing", {"itime": MISSING}, 55004),
    ("itime a string", {"itime": "1654076420772"}, 55004),
    ("itime a float", {"itime": 1654076420772.5}, 55004),
    ("itime a bool", {"itime": True}, 55004),
    ("itime negative", {"itime": -1}, 55004),
    ("itime past year 9999", {"itime": 253_402_300_800_000}, 55004),
    ("random_id a number", {"random_id": 7}, 55004),
    ("random_id empty", {"random_id": ""}, 55004),
    ("random_id too long", {"random_id": "r" * 257}, 55004),
    ("properties an array", {"properties": [1]}, 55004),
    ("property name bad", {"properties": {"A": 1}}, 55102),
    ("property null", {"properties": {"a": None}}, 55103),
    ("property empty string", {"properties": {"a": ""}}, 55103),
    ("property empty list", {"properties": {"a": []}}, 55103),
    ("property an object", {"properties": {"a": {}}}, 55102),
    ("property number too big", {"properties": {"a": 2**70}}, 55102),
    ("property with U+0000", {"properties": {"a": "\x00"}}, 55102),
    ("property string too long", {"properties": {"a": "x" * 257}}, 55102),
    ("list of numbers", {"properties": {"a": [1]}}, 55102),
]


@pytest.mark.parametrize(("_why", "change", "code"), BAD_EVENTS, ids=[b[0] for b in BAD_EVENTS])
async def test_each_event_rule_rejects_that_event(
    api: Api, _why: str, change: object, code: int
) -> None:
    [euid] = await api.register("u1")
    raw: object = change
    if isinstance(change, dict):
        raw = {k: v for k, v in {**event(euid), **change}.items() if v is not MISSING}
    r = await report(api, event(euid, "fine"), raw)
    body = r.json()
    assert body["code"] == 0, body
    [item] = body["errors"]
    assert (item["index"], item["code"]) == (1, code), item
    assert [e["event_name"] for e in await events_of(api, euid)] == ["fine"]


async def test_a_bad_property_names_the_property(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await report(api, event(euid, properties={"ok": 1, "bad": {"x": 1}}))
    [item] = r.json()["errors"]
    assert item["property"] == "bad"


async def test_every_event_rejected_alike_gives_their_code(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await report(api, event(euid, properties={"a": None}), event(euid, properties={"b": ""}))
    assert (r.status_code, r.json()["code"]) == (400, 55103)
    assert [e["index"] for e in r.json()["errors"]] == [0, 1]
    r = await report(api, event(123_456_789))
    assert (r.status_code, r.json()["code"]) == (404, 40404)


async def test_every_event_rejected_for_different_reasons_is_55004(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await report(api, event(123_456_789), event(euid, properties={"a": None}))
    assert (r.status_code, r.json()["code"]) == (400, 55004)
    assert [(e["index"], e["code"]) for e in r.json()["errors"]] == [(0, 40404), (1, 55103)]


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"data": []},
        {"data": {"euid": 1}},
        {"data": "x"},
        {"app_key": 5, "data": [{"euid": 1, "event_name": "e", "itime": 1}]},
    ],
)
async def test_request_shape_errors_are_55004(api: Api, body: object) -> None:
    r = await api.post("/v1/event/report", body)
    assert (r.status_code, r.json()["code"]) == (400, 55004)


async def test_at_most_100_events_per_call(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await report(api, *[event(euid, itime=i) for i in range(100)])
    assert r.json() == {"code": 0, "message": "success"}
    r = await report(api, *[event(euid, itime=i) for i in range(101)])
    assert (r.status_code, r.json()["code"]) == (400, 55004)
    assert len(await events_of(api, euid, limit=500)) == 100


async def test_at_most_500_properties_per_event(api: Api) -> None:
    [euid] = await api.register("u1")
    many = {f"p{i}": i for i in range(500)}
    r = await report(api, event(euid, properties=many), event(euid, properties={**many, "x": 1}))
    assert r.json()["code"] == 0
    [item] = r.json()["errors"]
    assert (item["index"], item["code"]) == (1, 55004)


async def test_events_of_another_projects_user_are_rejected(app: App, api: Api) -> None:
    other = await new_api(app, "other")
    try:
        [theirs] = await other.register("u1")
        r = await report(api, event(theirs))
        assert r.json()["code"] == 40404
        r = await api.get("/v1/event/list", euid=theirs)
        assert r.status_code == 404
    finally:
        await other.http.aclose()


async def test_report_needs_credentials(api: Api) -> None:
    r = await api.http.post("/v1/event/report", json={"data": []})
    assert (r.status_code, r.json()["code"]) == (401, 40050)


# Property types


async def test_first_accepted_value_fixes_the_property_type(api: Api) -> None:
    [euid] = await api.register("u1")
    await report(api, event(euid, "buy", properties={"amount": 5}))
    r = await report(api, event(euid, "buy", properties={"amount": "five"}))
    assert r.json()["code"] == 55102
    [item] = r.json()["errors"]
    assert item["property"] == "amount"
    assert "NUMBER" in item["message"]


async def test_types_are_per_event(api: Api) -> None:
    [euid] = await api.register("u1")
    await report(api, event(euid, "buy", properties={"amount": 5}))
    r = await report(api, event(euid, "refund", properties={"amount": "all"}))
    assert r.json()["code"] == 0


async def test_first_value_in_one_request_fixes_the_type_for_the_next(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await report(
        api,
        event(euid, "buy", properties={"amount": 5}),
        event(euid, "buy", properties={"amount": "five"}),
    )
    assert [(e["index"], e["code"]) for e in r.json()["errors"]] == [(1, 55102)]


async def test_a_rejected_event_defines_no_property(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await report(api, event(euid, "buy", properties={"amount": "five", "bad": None}))
    assert r.json()["code"] == 55103
    r = await report(api, event(euid, "buy", properties={"amount": 5}))
    assert r.json()["code"] == 0


async def test_a_list_property_accepts_a_single_string_once_defined(api: Api) -> None:
    [euid] = await api.register("u1")
    await report(api, event(euid, properties={"tags": ["a"]}))
    r = await report(api, event(euid, properties={"tags": "b"}))
    assert r.json()["code"] == 0
    assert (await events_of(api, euid))[0]["properties"] == {"tags": ["b"]}


# random_id


async def test_random_id_duplicate_is_acknowledged_not_stored_twice(api: Api) -> None:
    [euid] = await api.register("u1")
    first = event(euid, random_id="r1", properties={"n": 1})
    assert (await report(api, first)).json() == {"code": 0, "message": "success"}
    assert (await report(api, first)).json() == {"code": 0, "message": "success"}
    assert len(await events_of(api, euid)) == 1


async def test_random_id_duplicate_in_one_request_is_stored_once(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await report(api, event(euid, random_id="r1"), event(euid, random_id="r1"))
    assert r.json() == {"code": 0, "message": "success"}
    assert len(await events_of(api, euid)) == 1


async def test_a_duplicate_is_acknowledged_even_if_it_differs(api: Api) -> None:
    [euid] = await api.register("u1")
    await report(api, event(euid, "first", random_id="r1"))
    r = await report(api, event(euid, "second", random_id="r1", properties={"x": 1}))
    assert r.json()["code"] == 0
    assert [e["event_name"] for e in await events_of(api, euid)] == ["first"]


async def test_a_rejected_event_does_not_claim_its_random_id(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await report(api, event(euid, random_id="r1", properties={"a": None}), event(euid))
    assert r.json()["code"] == 0
    r = await report(api, event(euid, "retry", random_id="r1"))
    assert r.json()["code"] == 0
    assert "retry" in [e["event_name"] for e in await events_of(api, euid)]


async def test_events_without_random_id_are_all_stored(api: Api) -> None:
    [euid] = await api.register("u1")
    await report(api, event(euid), event(euid))
    await report(api, event(euid))
    assert len(await events_of(api, euid)) == 3


async def test_random_id_is_per_project(app: App, api: Api) -> None:
    other = await new_api(app, "other")
    try:
        [mine] = await api.register("u1")
        [theirs] = await other.register("u1")
        await report(api, event(mine, random_id="r1"))
        await report(other, event(theirs, random_id="r1"))
        assert len(await events_of(other, theirs)) == 1
    finally:
        await other.http.aclose()


async def test_concurrent_duplicate_random_ids_store_one_event(api: Api) -> None:
    euids = await api.register("u1", "u2")
    answers = await asyncio.gather(
        *(report(api, event(euids[i % 2], random_id="same")) for i in range(20))
    )
    assert {r.json()["code"] for r in answers} == {0}
    stored = [len(await events_of(api, e)) for e in euids]
    assert sorted(stored) == [0, 1]
