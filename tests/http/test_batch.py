"""POST /v1/user/property/batch: each update applied as its own request, in order, all in
one group, each answered with the code it would have got alone."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api


@pytest.fixture
async def euids(api: Api) -> list[int]:
    return await api.register("a", "b")


async def batch(api: Api, updates: Any) -> Any:
    return await api.post("/v1/user/property/batch", {"updates": updates})


async def test_each_update_is_answered_with_its_own_code(api: Api, euids: list[int]) -> None:
    a, b = euids
    r = await batch(
        api,
        [
            {"euid": a, "type": "set", "properties": {"plan": "gold", "age": 30}},
            {"euid": b, "type": "increase", "properties": {"orders": 2}},
            {"euid": a, "type": "increase", "properties": {"plan": 1}},  # STRING: 55102
            {"euid": a, "type": "set", "properties": {"plan": ""}},  # empty: 55103
            {"euid": a, "type": "set", "properties": {"age": 31, "plan": []}},  # partial
            {"euid": 999_999, "type": "set", "properties": {"x": 1}},  # 40404
            {"type": "set", "properties": {"x": 1}},  # 40007
            {"euid": a, "type": "SET", "properties": {"x": 1}},  # 55004
            "not an object",  # 55004
            {"euid": b, "type": "increase", "properties": {"orders": 3}},  # after the others
        ],
    )
    assert r.status_code == 200 and r.json()["code"] == 0, r.text
    items = r.json()["data"]
    assert [i["index"] for i in items] == list(range(10))
    assert [i["code"] for i in items] == [0, 0, 55102, 55103, 0, 40404, 40007, 55004, 55004, 0]
    assert items[0] == {"index": 0, "code": 0, "message": "success"}
    assert items[2]["errors"] == [
        {
            "property": "plan",
            "code": 55102,
            "message": "increase needs a NUMBER attribute; plan is STRING",
        }
    ]
    assert items[4]["message"] == "partial success: 1 item(s) rejected"
    assert [e["property"] for e in items[4]["errors"]] == ["plan"]
    assert await api.props(a) == {"age": 31, "plan": "gold"}
    assert await api.props(b) == {"orders": 5}


async def test_a_batch_answers_as_single_requests_would(api: Api, euids: list[int]) -> None:
    """The same updates, once as single requests and once as a batch on a twin user."""
    a, b = euids
    updates: list[dict[str, Any]] = [
        {"type": "set", "properties": {"tags": ["x"], "n": 1.5, "when": "2024-01-01 10:00:00"}},
        {"type": "add", "properties": {"tags": ["y", "x"]}},
        {"type": "remove", "properties": {"tags": "x", "n": "bad"}},
        {"type": "increase", "properties": {"n": 0.5, "missing": None}},
        {"type": "delete", "properties": {"when": 0}},
    ]
    singles = [(await api.set(a, u["type"], u["properties"])).json() for u in updates]
    items = (await batch(api, [{"euid": b, **u} for u in updates])).json()["data"]
    for single, item in zip(singles, items, strict=True):
        assert item["code"] == single["code"]
        assert item.get("errors") == single.get("errors")
    assert await api.props(a) == await api.props(b)


async def test_a_batch_records_history_like_single_requests(api: Api, euids: list[int]) -> None:
    a, _ = euids
    await batch(
        api,
        [
            {"euid": a, "type": "set", "properties": {"plan": "gold"}},
            {"euid": a, "type": "set", "properties": {"plan": "gold"}},  # no change
            {"euid": a, "type": "set", "properties": {"plan": "free"}},
        ],
    )
    r = await api.get("/v1/user/history", euid=a)
    assert [(c["old"], c["new"]) for c in r.json()["data"]["changes"]] == [
        ("gold", "free"),
        (None, "gold"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"updates": []},
        {"updates": [{"euid": 1, "type": "set", "properties": {"a": 1}}] * 1001},
        {"updates": {"euid": 1}},
        {"updates": None},
        {},
        [],
    ],
    ids=["empty", "1001 updates", "an object", "null", "missing", "not an object"],
)
async def test_a_malformed_batch_is_55004_and_applies_nothing(
    api: Api, euids: list[int], body: Any
) -> None:
    r = await api.post("/v1/user/property/batch", body)
    assert (r.status_code, r.json()["code"]) == (400, 55004)
    assert await api.props(euids[0]) == {}


async def test_1000_updates_is_the_most_a_batch_holds(api: Api, euids: list[int]) -> None:
    a, _ = euids
    updates = [{"euid": a, "type": "increase", "properties": {"n": 1}}] * 1000
    items = (await batch(api, updates)).json()["data"]
    assert {i["code"] for i in items} == {0}
    assert await api.props(a) == {"n": 1000}


async def test_a_batch_retried_with_an_idempotency_key_applies_once(
    api: Api, euids: list[int]
) -> None:
    a, _ = euids
    body = {"updates": [{"euid": a, "type": "increase", "properties": {"n": 1}}] * 3}
    headers = {**api.auth_header, "idempotency-key": "batch-1"}
    first = await api.http.post("/v1/user/property/batch", json=body, headers=headers)
    again = await api.http.post("/v1/user/property/batch", json=body, headers=headers)
    assert first.json() == again.json()
    assert await api.props(a) == {"n": 3}
