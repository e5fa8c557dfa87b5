"""POST /v1/user/register over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.api import Api, new_api


async def test_register_creates_then_gets_the_same_euid(api: Api) -> None:
    r = await api.post("/v1/user/register", {"identity_name": "user_id", "identity_values": ["a"]})
    assert r.status_code == 200
    body = r.json()
    assert body["code"] == 0 and body["message"] == "success"
    [item] = body["data"]
    assert item["identity_value"] == "a" and isinstance(item["euid"], int)
    assert await api.register("a") == [item["euid"]]


async def test_each_value_gets_its_own_user(api: Api) -> None:
    euids = await api.register("a", "b", "c")
    assert len(set(euids)) == 3


async def test_duplicate_values_in_one_call_map_to_the_same_euid(api: Api) -> None:
    r = await api.post(
        "/v1/user/register", {"identity_name": "user_id", "identity_values": ["a", "b", "a"]}
    )
    data = r.json()["data"]
    assert [d["identity_value"] for d in data] == ["a", "b", "a"]
    assert data[0]["euid"] == data[2]["euid"] != data[1]["euid"]


@pytest.mark.parametrize("name", ["user_id", "anonymous_id", "registration_id"])
async def test_the_three_identity_names(api: Api, name: str) -> None:
    [euid] = await api.register("v", name=name)
    assert await api.register("v", name=name) == [euid]


async def test_identity_names_are_separate_namespaces(api: Api) -> None:
    [a] = await api.register("same", name="user_id")
    [b] = await api.register("same", name="anonymous_id")
    assert a != b


async def test_identity_values_are_per_project(app: Any, api: Api) -> None:
    other = await new_api(app, "other")
    [mine] = await api.register("u")
    [theirs] = await other.register("u")
    assert mine != theirs
    await other.http.aclose()


async def test_bad_values_are_reported_by_index_and_the_rest_succeed(api: Api) -> None:
    values: list[Any] = ["ok", "", "x" * 257, 5, None, "a\u0000b", "y" * 256]
    r = await api.post("/v1/user/register", {"identity_name": "user_id", "identity_values": values})
    body = r.json()
    assert r.status_code == 200 and body["code"] == 0
    assert [d["identity_value"] for d in body["data"]] == ["ok", "y" * 256]
    assert [(e["index"], e["code"]) for e in body["errors"]] == [
        (1, 55004),
        (2, 55004),
        (3, 55004),
        (4, 55004),
        (5, 55004),
    ]
    assert body["errors"][0]["identity_value"] == ""


async def test_all_bad_values_is_55004_with_errors(api: Api) -> None:
    r = await api.post("/v1/user/register", {"identity_name": "user_id", "identity_values": [""]})
    assert r.status_code == 400
    assert r.json()["code"] == 55004
    assert r.json()["errors"][0]["index"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"identity_name": "email", "identity_values": ["a"]},
        {"identity_name": "USER_ID", "identity_values": ["a"]},
        {"identity_values": ["a"]},
        {"identity_name": "user_id"},
        {"identity_name": "user_id", "identity_values": []},
        {"identity_name": "user_id", "identity_values": "a"},
        {"identity_name": "user_id", "identity_values": [str(i) for i in range(101)]},
    ],
)
async def test_shape_errors_are_55004(api: Api, body: dict[str, Any]) -> None:
    r = await api.post("/v1/user/register", body)
    assert r.status_code == 400
    assert r.json()["code"] == 55004


async def test_one_hundred_values_are_accepted(api: Api) -> None:
    euids = await api.register(*[f"v{i}" for i in range(100)])
    assert len(set(euids)) == 100


async def test_concurrent_register_of_one_value_yields_one_euid(api: Api) -> None:
    results = await asyncio.gather(*(api.register("same", "other") for _ in range(100)))
    assert len({r[0] for r in results}) == 1
    assert len({r[1] for r in results}) == 1
