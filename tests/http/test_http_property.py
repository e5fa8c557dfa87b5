"""POST /v1/user/property and GET /v1/user/property over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.api import Api, new_api


@pytest.fixture
async def euid(api: Api) -> int:
    [value] = await api.register("alice")
    return value


async def test_set_stores_every_type_and_reads_it_back(api: Api, euid: int) -> None:
    r = await api.set(
        euid,
        "set",
        {
            "plan": "gold",
            "age": 30,
            "score": 46.2,
            "vip": True,
            "signup": "2023-12-12 00:56:23",
            "interests": ["sports", "music", "sports"],
        },
    )
    assert r.status_code == 200
    assert r.json() == {"code": 0, "message": "success"}
    assert await api.props(euid) == {
        "plan": "gold",
        "age": 30,
        "score": 46.2,
        "vip": True,
        "signup": "2023-12-12T00:56:23+00:00",
        "interests": ["sports", "music"],
    }


async def test_read_back_has_the_documented_envelope(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"plan": "gold"})
    r = await api.get("/v1/user/property", euid=euid)
    assert r.json() == {
        "code": 0,
        "message": "success",
        "data": {"euid": euid, "properties": {"plan": "gold"}},
    }


async def test_set_overwrites(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"plan": "silver"})
    await api.set(euid, "set", {"plan": "gold"})
    assert await api.props(euid) == {"plan": "gold"}


async def test_increase_adds_and_counts_absent_as_zero(api: Api, euid: int) -> None:
    await api.set(euid, "increase", {"orders": 1})
    await api.set(euid, "increase", {"orders": 2})
    await api.set(euid, "increase", {"orders": -5})
    assert await api.props(euid) == {"orders": -2}


async def test_increase_is_exact_decimal_arithmetic(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"balance": 0.1})
    for _ in range(10):
        await api.set(euid, "increase", {"balance": 0.1})
    r = await api.get("/v1/user/property", euid=euid)
    assert '"balance":1.1' in r.text


async def test_integral_result_reads_back_as_an_integer(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"spend": 1.5})
    await api.set(euid, "increase", {"spend": 0.5})
    r = await api.get("/v1/user/property", euid=euid)
    assert '"spend":2}' in r.text


async def test_increase_past_int64_is_rejected_and_keeps_the_value(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"big": 2**63 - 1})
    r = await api.set(euid, "increase", {"big": 1})
    assert r.status_code == 400
    assert r.json()["code"] == 55102
    assert await api.props(euid) == {"big": 2**63 - 1}


async def test_add_is_a_set_union_keeping_order(api: Api, euid: int) -> None:
    await api.set(euid, "add", {"tags": ["a", "b", "c"]})
    await api.set(euid, "add", {"tags": ["c", "d"]})
    await api.set(euid, "add", {"tags": "e"})
    assert await api.props(euid) == {"tags": ["a", "b", "c", "d", "e"]}


async def test_remove_drops_elements_and_ignores_absent_ones(api: Api, euid: int) -> None:
    await api.set(euid, "add", {"tags": ["a", "b", "c", "d"]})
    await api.set(euid, "remove", {"tags": ["c", "d", "zz"]})
    assert await api.props(euid) == {"tags": ["a", "b"]}
    await api.set(euid, "remove", {"tags": "a"})
    assert await api.props(euid) == {"tags": ["b"]}


async def test_removing_the_last_element_leaves_no_value(api: Api, euid: int) -> None:
    await api.set(euid, "add", {"tags": ["a"]})
    await api.set(euid, "remove", {"tags": ["a"]})
    assert await api.props(euid) == {}


async def test_remove_from_an_absent_list_succeeds(api: Api, euid: int) -> None:
    r = await api.set(euid, "remove", {"tags": ["a"]})
    assert r.json()["code"] == 0
    assert await api.props(euid) == {}


async def test_set_of_a_single_string_on_a_list_attribute_is_a_one_element_list(
    api: Api, euid: int
) -> None:
    await api.set(euid, "add", {"tags": ["a"]})
    await api.set(euid, "set", {"tags": "solo"})
    assert await api.props(euid) == {"tags": ["solo"]}


async def test_delete_removes_the_value_whatever_was_sent(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"plan": "gold", "age": 3})
    r = await api.set(euid, "delete", {"plan": None, "age": "ignored"})
    assert r.json() == {"code": 0, "message": "success"}
    assert await api.props(euid) == {}


async def test_delete_of_an_absent_or_undefined_attribute_succeeds(api: Api, euid: int) -> None:
    r = await api.set(euid, "delete", {"never_defined": None})
    assert r.json() == {"code": 0, "message": "success"}
    r = await api.set(euid, "delete", {"never_defined": None})
    assert r.json() == {"code": 0, "message": "success"}


async def test_partial_success_applies_the_valid_properties(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"age": 1})
    r = await api.set(euid, "set", {"plan": "gold", "age": "old", "Bad": 1, "nothing": None})
    body = r.json()
    assert r.status_code == 200
    assert body["code"] == 0
    assert body["message"].startswith("partial success")
    assert sorted(body["errors"], key=lambda e: e["property"]) == [
        {"property": "Bad", "code": 55102, "message": "name must match ^[a-z][a-z0-9_]*$"},
        {"property": "age", "code": 55102, "message": "expected NUMBER, got string"},
        {"property": "nothing", "code": 55103, "message": "value is empty"},
    ]
    assert await api.props(euid) == {"age": 1, "plan": "gold"}


async def test_all_empty_values_is_55103(api: Api, euid: int) -> None:
    r = await api.set(euid, "set", {"a": None, "b": "", "c": []})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == 55103
    assert [e["code"] for e in body["errors"]] == [55103, 55103, 55103]


async def test_all_rejected_with_any_invalid_is_55102(api: Api, euid: int) -> None:
    r = await api.set(euid, "set", {"a": None, "b": {"nested": 1}})
    assert r.status_code == 400
    assert r.json()["code"] == 55102
    assert len(r.json()["errors"]) == 2


@pytest.mark.parametrize(
    ("defined", "op", "value", "message"),
    [
        ({"plan": "gold"}, "increase", 1, "increase needs a NUMBER attribute; plan is STRING"),
        ({"plan": 1}, "add", ["x"], "add needs a LIST attribute; plan is NUMBER"),
        ({"plan": ["a"]}, "set", 5, "expected LIST (array of strings), got number"),
        ({"plan": True}, "set", "yes", "expected BOOL, got string"),
        ({"plan": "2023-01-01 00:00:00"}, "set", "tomorrow", "expected DATETIME"),
    ],
)
async def test_a_value_or_operation_that_does_not_fit_the_type_is_rejected(
    api: Api, euid: int, defined: dict[str, Any], op: str, value: Any, message: str
) -> None:
    await api.set(euid, "set", defined)
    r = await api.set(euid, op, {"plan": value})
    assert r.status_code == 400
    assert r.json()["code"] == 55102
    [error] = r.json()["errors"]
    assert error["property"] == "plan"
    assert error["code"] == 55102
    assert message in error["message"]


async def test_a_defined_type_never_changes_by_itself(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"age": 5})
    await api.set(euid, "delete", {"age": None})
    r = await api.set(euid, "set", {"age": "five"})
    assert r.json()["code"] == 55102


async def test_types_are_per_project(app: Any, api: Api) -> None:
    other = await new_api(app, "other")
    [mine] = await api.register("u")
    [theirs] = await other.register("u")
    await api.set(mine, "set", {"level": 3})
    r = await other.set(theirs, "set", {"level": "high"})
    assert r.json() == {"code": 0, "message": "success"}
    await other.http.aclose()


async def test_a_rejected_value_defines_nothing(api: Api, euid: int) -> None:
    r = await api.set(euid, "set", {"name": "x" * 300})
    assert r.json()["code"] == 55102
    r = await api.set(euid, "set", {"name": 5})
    assert r.json() == {"code": 0, "message": "success"}


async def test_numbers_outside_the_bounds_are_invalid_for_that_property(
    api: Api, euid: int
) -> None:
    body = (
        b'{"euid": %d, "type": "set", "properties": {"a": 1e400, "b": 1180591620717411303424,'
        b' "c": 0.12345678901234567890123456789, "ok": 1}}' % euid
    )
    r = await api.http.post("/v1/user/property", content=body, headers=api.auth_header)
    assert r.json()["code"] == 0
    assert sorted(e["property"] for e in r.json()["errors"]) == ["a", "b", "c"]


async def test_strings_with_nul_or_a_lone_surrogate_are_invalid(api: Api, euid: int) -> None:
    body = b'{"euid": %d, "type": "set", "properties": {"a": "x\\u0000y", "b": "\\ud800",' % euid
    body += b' "c": ["ok", "\\udfff"], "d": "fine"}}'
    r = await api.http.post("/v1/user/property", content=body, headers=api.auth_header)
    assert r.json()["code"] == 0
    assert [(e["property"], e["code"]) for e in r.json()["errors"]] == [
        ("a", 55102),
        ("b", 55102),
        ("c", 55102),
    ]
    assert await api.props(euid) == {"d": "fine"}


async def test_datetime_forms_are_all_accepted(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"seen": "2023-12-12 00:56:23"})
    for value in ["2023-12-12", "2023-12-12T10:00:00Z", "2023-12-12T10:00:00.25+02:00"]:
        r = await api.set(euid, "set", {"seen": value})
        assert r.json() == {"code": 0, "message": "success"}, value
    assert await api.props(euid) == {"seen": "2023-12-12T08:00:00.250000+00:00"}
    await api.set(euid, "set", {"seen": 1654076420772})
    assert await api.props(euid) == {"seen": "2022-06-01T09:40:20.772000+00:00"}


async def test_datetime_reads_back_in_the_project_time_zone(app: Any) -> None:
    api = await new_api(app, "cn", tz="Asia/Shanghai")
    [euid] = await api.register("u")
    await api.set(euid, "set", {"seen": "2023-12-12 08:00:00"})
    assert await api.props(euid) == {"seen": "2023-12-12T08:00:00+08:00"}
    await api.http.aclose()


async def test_type_inference_in_auto_mode(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"s": "2023-12-12", "d": "2023-12-12 01:02:03", "n": 1, "b": False})
    await api.set(euid, "increase", {"i": 2})
    await api.set(euid, "add", {"l": "x"})
    from userprops import admin

    assert api.app.services is not None
    types = {n: str(t) for n, t, _ in admin.list_attributes(api.app.services.storage, "shop")}
    assert types == {
        "s": "STRING",
        "d": "DATETIME",
        "n": "NUMBER",
        "b": "BOOL",
        "i": "NUMBER",
        "l": "LIST",
    }


async def test_strict_mode_rejects_undefined_attributes(strict_api: Api) -> None:
    from userprops import admin
    from userprops.schema import AttrType

    assert strict_api.app.services is not None
    admin.define_attribute(strict_api.app.services.storage, "strict", "plan", AttrType.STRING)
    [euid] = await strict_api.register("u")
    r = await strict_api.set(euid, "set", {"plan": "gold", "age": 3})
    assert r.json()["code"] == 0
    assert r.json()["errors"] == [
        {
            "property": "age",
            "code": 55102,
            "message": "attribute age is not defined (project schema is strict)",
        }
    ]
    r = await strict_api.set(euid, "delete", {"age": None})
    assert r.json() == {"code": 0, "message": "success"}
    r = await strict_api.set(euid, "set", {"age": None})
    assert r.json()["code"] == 55103


async def test_unknown_euid_is_404(api: Api) -> None:
    r = await api.set(987654, "set", {"a": 1})
    assert r.status_code == 404
    assert r.json() == {"code": 40404, "message": "user not found"}
    r = await api.get("/v1/user/property", euid=987654)
    assert r.status_code == 404
    assert r.json()["code"] == 40404


async def test_another_projects_user_is_not_found(app: Any, api: Api) -> None:
    other = await new_api(app, "other")
    [theirs] = await other.register("bob")
    await other.set(theirs, "set", {"secret": "x"})
    r = await api.set(theirs, "set", {"a": 1})
    assert (r.status_code, r.json()) == (404, {"code": 40404, "message": "user not found"})
    r = await api.get("/v1/user/property", euid=theirs)
    assert (r.status_code, r.json()) == (404, {"code": 40404, "message": "user not found"})
    assert await other.props(theirs) == {"secret": "x"}
    await other.http.aclose()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"type": "set", "properties": {"a": 1}}, 40007),
        ({"euid": None, "type": "set", "properties": {"a": 1}}, 40007),
        ({"euid": "", "type": "set", "properties": {"a": 1}}, 40007),
        ({"euid": "12", "type": "set", "properties": {"a": 1}}, 55004),
        ({"euid": 1.5, "type": "set", "properties": {"a": 1}}, 55004),
        ({"euid": True, "type": "set", "properties": {"a": 1}}, 55004),
        ({"euid": 0, "type": "set", "properties": {"a": 1}}, 55004),
        ({"euid": -3, "type": "set", "properties": {"a": 1}}, 55004),
        ({"euid": 2**63, "type": "set", "properties": {"a": 1}}, 55004),
        ({"euid": 1, "properties": {"a": 1}}, 55004),
        ({"euid": 1, "type": "SET", "properties": {"a": 1}}, 55004),
        ({"euid": 1, "type": "append", "properties": {"a": 1}}, 55004),
        ({"euid": 1, "type": 3, "properties": {"a": 1}}, 55004),
        ({"euid": 1, "type": "set"}, 55004),
        ({"euid": 1, "type": "set", "properties": {}}, 55004),
        ({"euid": 1, "type": "set", "properties": [1]}, 55004),
        ({"euid": 1, "type": "set", "properties": {f"p{i}": 1 for i in range(501)}}, 55004),
        ([1, 2], 55004),
        ("text", 55004),
    ],
)
async def test_request_shape_errors(api: Api, body: Any, code: int) -> None:
    r = await api.post("/v1/user/property", body)
    assert r.status_code == 400
    assert r.json()["code"] == code
    assert set(r.json()) == {"code", "message"}


async def test_euid_is_checked_before_the_user_lookup_and_type(api: Api) -> None:
    r = await api.post("/v1/user/property", {"euid": None, "type": "bogus"})
    assert r.json()["code"] == 40007


async def test_500_properties_are_accepted(api: Api, euid: int) -> None:
    r = await api.set(euid, "set", {f"p{i}": i for i in range(500)})
    assert r.json() == {"code": 0, "message": "success"}
    assert len(await api.props(euid)) == 500


@pytest.mark.parametrize("query", ["", "euid=", "euid=abc", "euid=0", "euid=-1", "euid=1.5"])
async def test_read_query_errors(api: Api, query: str) -> None:
    r = await api.http.get(f"/v1/user/property?{query}", headers=api.auth_header)
    assert r.status_code == 400
    assert r.json()["code"] == (40007 if query in ("", "euid=") else 55004)


async def test_a_request_is_atomic_when_the_commit_fails(api: Api, euid: int) -> None:
    from userprops.errors import StorageUnavailable

    await api.set(euid, "set", {"a": 1})
    writer = api.app.writer
    assert writer is not None
    original = writer.storage.run_batch

    def failing(jobs: Any) -> Any:
        original(jobs[:0])  # touch the database, then fail as a full disk would
        raise StorageUnavailable("disk full")

    writer.storage.run_batch = failing  # type: ignore[method-assign]
    try:
        r = await api.set(euid, "set", {"a": 2, "b": 3})
    finally:
        writer.storage.run_batch = original  # type: ignore[method-assign]
    assert r.status_code == 503
    assert r.json()["code"] == 50300
    assert await api.props(euid) == {"a": 1}


async def test_concurrent_increases_are_never_lost(api: Api, euid: int) -> None:
    results = await asyncio.gather(*(api.set(euid, "increase", {"n": 1}) for _ in range(300)))
    assert all(r.json() == {"code": 0, "message": "success"} for r in results)
    assert await api.props(euid) == {"n": 300}


async def test_concurrent_adds_and_removes_on_one_list(api: Api, euid: int) -> None:
    adds = [api.set(euid, "add", {"l": [f"x{i}", "common"]}) for i in range(100)]
    removes = [api.set(euid, "remove", {"l": [f"x{i}"]}) for i in range(0, 100, 2)]
    await asyncio.gather(*adds)
    await asyncio.gather(*removes)
    props = await api.props(euid)
    assert sorted(props["l"]) == sorted(["common"] + [f"x{i}" for i in range(1, 100, 2)])  # type: ignore[call-overload]
