"""Event time over HTTP (docs/bulk.md, "Event time"): an optional ``timestamp`` on a
property body and on each batch update; a set or delete older than the stored value is
listed in ``errors`` with 55106, increase, add and remove always apply."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api
from userprops.clock import now_ms
from userprops.properties import MAX_AHEAD_MS

T = 1_700_000_000_000  # an event time in the past
HOUR = 3_600_000


@pytest.fixture
async def euid(api: Api) -> int:
    [value] = await api.register("alice")
    return value


def stale(name: str, stored: int, written: int) -> dict[str, Any]:
    message = f"property is older than its stored value (stored at {stored}, written at {written})"
    return {"property": name, "code": 55106, "message": message}


async def history(api: Api, euid: int) -> list[dict[str, Any]]:
    r = await api.get("/v1/user/history", euid=euid, limit=500)
    assert r.json()["code"] == 0, r.text
    return r.json()["data"]["changes"]  # type: ignore[no-any-return]


async def test_a_set_older_than_the_stored_value_is_listed_and_the_rest_applied(
    api: Api, euid: int
) -> None:
    await api.set(euid, "set", {"plan": "gold"}, timestamp=T)
    r = await api.set(euid, "set", {"plan": "silver", "age": 30}, timestamp=T - 1)
    body = r.json()
    assert r.status_code == 200 and body["code"] == 0, r.text
    assert body["message"] == "partial success: 1 item(s) rejected"
    assert body["errors"] == [stale("plan", T, T - 1)]
    assert await api.props(euid) == {"plan": "gold", "age": 30}


async def test_a_request_whose_every_property_is_stale_is_55102(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"plan": "gold", "age": 30}, timestamp=T)
    r = await api.set(euid, "set", {"plan": "silver", "age": 31}, timestamp=T - 1)
    assert r.status_code == 400 and r.json()["code"] == 55102, r.text
    assert [(e["property"], e["code"]) for e in r.json()["errors"]] == [
        ("plan", 55106),
        ("age", 55106),
    ]
    assert await api.props(euid) == {"plan": "gold", "age": 30}


async def test_equal_and_newer_timestamps_apply(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"plan": "gold"}, timestamp=T)
    assert (await api.set(euid, "set", {"plan": "silver"}, timestamp=T)).json()["code"] == 0
    assert await api.props(euid) == {"plan": "silver"}
    assert (await api.set(euid, "set", {"plan": "bronze"}, timestamp=T + 1)).json()["code"] == 0
    assert await api.props(euid) == {"plan": "bronze"}


async def test_the_same_value_later_moves_its_time_and_records_no_change(
    api: Api, euid: int
) -> None:
    await api.set(euid, "set", {"plan": "gold"}, timestamp=T)
    r = await api.set(euid, "set", {"plan": "gold"}, timestamp=T + 10)
    assert r.json() == {"code": 0, "message": "success"}
    assert len(await history(api, euid)) == 1
    r = await api.set(euid, "set", {"plan": "silver"}, timestamp=T + 5)  # before the second
    assert r.json()["errors"][0]["code"] == 55106


async def test_increase_add_and_remove_with_an_old_timestamp_still_apply(
    api: Api, euid: int
) -> None:
    await api.set(euid, "set", {"visits": 1, "tags": ["a", "b"]}, timestamp=T)
    for op, properties in (
        ("increase", {"visits": 2}),
        ("add", {"tags": "c"}),
        ("remove", {"tags": "a"}),
    ):
        r = await api.set(euid, op, properties, timestamp=T - HOUR)
        assert r.json() == {"code": 0, "message": "success"}, (op, r.text)
    assert await api.props(euid) == {"visits": 3, "tags": ["b", "c"]}
    # They left the value's time at the newer one: a set between the two is still stale.
    r = await api.set(euid, "set", {"visits": 10}, timestamp=T - 1)
    assert r.json()["code"] == 55102 and r.json()["errors"][0]["code"] == 55106


async def test_a_delete_is_ordered_by_time_and_leaves_no_tombstone(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"plan": "gold"}, timestamp=T)
    r = await api.set(euid, "delete", {"plan": None}, timestamp=T - 1)
    assert r.json()["code"] == 55102 and r.json()["errors"][0]["code"] == 55106
    assert await api.props(euid) == {"plan": "gold"}
    assert (await api.set(euid, "delete", {"plan": None}, timestamp=T + 1)).json()["code"] == 0
    assert await api.props(euid) == {}
    # Nothing remembers the delete: a set older than it brings the value back.
    assert (await api.set(euid, "set", {"plan": "silver"}, timestamp=T)).json()["code"] == 0
    assert await api.props(euid) == {"plan": "silver"}


async def test_writes_without_a_timestamp_are_now(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"plan": "gold"})
    r = await api.set(euid, "set", {"plan": "backfilled"}, timestamp=T)  # older than now
    assert r.json()["code"] == 55102
    ahead = now_ms() + HOUR // 2  # a client clock that runs fast
    await api.set(euid, "set", {"plan": "early"}, timestamp=ahead)
    assert (await api.set(euid, "set", {"plan": "live"})).json()["code"] == 0  # still applies
    r = await api.set(euid, "set", {"plan": "late"}, timestamp=ahead - 1)  # its time was kept
    assert r.json()["code"] == 55102
    assert await api.props(euid) == {"plan": "live"}


@pytest.mark.parametrize(
    "timestamp",
    ["1700000000000", 1.7e12, -1, True, [T], {"ms": T}, "FAR"],
)
async def test_a_timestamp_that_is_not_epoch_milliseconds_in_range_is_55004(
    api: Api, euid: int, timestamp: object
) -> None:
    if timestamp == "FAR":
        timestamp = now_ms() + MAX_AHEAD_MS + 60_000
    r = await api.set(euid, "set", {"plan": "gold"}, timestamp=timestamp)
    assert r.status_code == 400 and r.json()["code"] == 55004, r.text
    assert "timestamp" in r.json()["message"]
    assert await api.props(euid) == {}


async def test_a_null_timestamp_is_now_and_zero_is_the_oldest(api: Api, euid: int) -> None:
    r = await api.post(
        "/v1/user/property",
        {"euid": euid, "type": "set", "properties": {"plan": "gold"}, "timestamp": None},
    )
    assert r.json()["code"] == 0
    assert (await api.set(euid, "set", {"plan": "x"}, timestamp=0)).json()["code"] == 55102


async def test_each_batch_update_has_its_own_timestamp(api: Api, euid: int) -> None:
    r = await api.post(
        "/v1/user/property/batch",
        {
            "updates": [
                {"euid": euid, "type": "set", "properties": {"plan": "c"}, "timestamp": T + 2},
                {"euid": euid, "type": "set", "properties": {"plan": "a"}, "timestamp": T},
                {"euid": euid, "type": "set", "properties": {"plan": "x"}, "timestamp": -5},
                {
                    "euid": euid,
                    "type": "set",
                    "properties": {"n": 1, "plan": "b"},
                    "timestamp": T + 1,
                },
                {"euid": euid, "type": "increase", "properties": {"n": 1}, "timestamp": T},
            ]
        },
    )
    assert r.json()["code"] == 0, r.text
    items = r.json()["data"]
    assert [i["code"] for i in items] == [0, 55102, 55004, 0, 0]
    assert items[1]["errors"][0]["code"] == 55106
    assert "timestamp" in items[2]["message"]
    assert items[3]["errors"] == [stale("plan", T + 2, T + 1)]
    assert await api.props(euid) == {"plan": "c", "n": 2}
