"""The history of changes (GET /v1/user/history) and the change feed (GET /v1/changes),
over HTTP on every backend: what is recorded for each operation and type, what is not,
paging, long polls and bad input."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.api import Api, new_api

Change = tuple[str, str, Any, Any]  # (property, op, old, new)

# (what is stored first, op, properties sent, the changes recorded, in order)
HISTORY_CASES: list[tuple[str, dict[str, Any], str, dict[str, Any], list[Change]]] = [
    ("set creates", {}, "set", {"plan": "gold"}, [("plan", "set", None, "gold")]),
    (
        "set overwrites",
        {"plan": "gold"},
        "set",
        {"plan": "free"},
        [("plan", "set", "gold", "free")],
    ),
    ("set the same STRING", {"plan": "gold"}, "set", {"plan": "gold"}, []),
    ("set the same NUMBER, written otherwise", {"n": 2}, "set", {"n": 2.0}, []),
    ("set the same BOOL", {"vip": True}, "set", {"vip": True}, []),
    (
        "set the same instant in another form",
        {"at": "2024-01-02 03:04:05"},
        "set",
        {"at": "2024-01-02T04:04:05+01:00"},
        [],
    ),
    ("set the same LIST", {"tags": ["a", "b"]}, "set", {"tags": ["a", "b", "a"]}, []),
    (
        "set a LIST in another order",
        {"tags": ["a", "b"]},
        "set",
        {"tags": ["b", "a"]},
        [("tags", "set", ["a", "b"], ["b", "a"])],
    ),
    ("increase by 0", {"n": 5}, "increase", {"n": 0}, []),
    ("increase", {"n": 5}, "increase", {"n": 2}, [("n", "increase", 5, 7)]),
    ("increase an absent value", {}, "increase", {"n": 1.5}, [("n", "increase", None, 1.5)]),
    ("add what is there", {"tags": ["a"]}, "add", {"tags": "a"}, []),
    ("add", {"tags": ["a"]}, "add", {"tags": ["b"]}, [("tags", "add", ["a"], ["a", "b"])]),
    ("remove what is absent", {"tags": ["a"]}, "remove", {"tags": ["z"]}, []),
    (
        "remove",
        {"tags": ["a", "b"]},
        "remove",
        {"tags": "a"},
        [("tags", "remove", ["a", "b"], ["b"])],
    ),
    (
        "remove the last element",
        {"tags": ["a"]},
        "remove",
        {"tags": "a"},
        [("tags", "remove", ["a"], None)],
    ),
    ("delete", {"plan": "gold"}, "delete", {"plan": None}, [("plan", "delete", "gold", None)]),
    ("delete what is absent", {"plan": "gold"}, "delete", {"other": 1}, []),
    ("delete an undefined attribute", {}, "delete", {"never": 1}, []),
    ("a rejected property", {"n": 1}, "increase", {"n": "x"}, []),
]


@pytest.fixture
async def euid(api: Api) -> int:
    [value] = await api.register("alice")
    return value


async def history(api: Api, euid: int, **params: object) -> dict[str, Any]:
    r = await api.get("/v1/user/history", euid=euid, **params)
    assert r.json()["code"] == 0, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


async def feed(api: Api, **params: object) -> dict[str, Any]:
    r = await api.get("/v1/changes", **params)
    assert r.json()["code"] == 0, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("stored", "op", "sent", "expected"),
    [case[1:] for case in HISTORY_CASES],
    ids=[case[0] for case in HISTORY_CASES],
)
async def test_a_change_is_recorded_exactly_when_a_value_changes(
    api: Api,
    euid: int,
    stored: dict[str, Any],
    op: str,
    sent: dict[str, Any],
    expected: list[Change],
) -> None:
    if stored:
        assert (await api.set(euid, "set", stored)).json()["code"] == 0
    before = (await feed(api))["last_seq"]
    await api.set(euid, op, sent)
    changes = (await feed(api, after=before))["changes"]
    assert [(c["property"], c["op"], c["old"], c["new"]) for c in changes] == expected
    for change in changes:
        assert change["euid"] == euid
        assert change["source"] == "test"  # the data source's name


async def test_a_change_carries_its_seq_source_and_commit_time(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"plan": "gold", "age": 30})
    await api.set(euid, "increase", {"age": 1})
    page = await history(api, euid)
    assert [(c["property"], c["new"]) for c in page["changes"]] == [
        ("age", 31),
        ("age", 30),
        ("plan", "gold"),
    ]  # newest first; one request's changes numbered in the order sent
    seqs = [c["seq"] for c in page["changes"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 3
    assert all(isinstance(c["at"], int) and c["at"] > 1_600_000_000_000 for c in page["changes"])
    assert page["next_cursor"] is None


async def test_history_values_read_back_as_values_do(app: Any) -> None:
    api = await new_api(app, "tokyo", tz="Asia/Tokyo")
    try:
        [euid] = await api.register("a")
        await api.set(euid, "set", {"seen": "2024-01-02 03:04:05", "score": 1.10})
        changes = (await history(api, euid))["changes"]
        props = await api.props(euid)
        assert {c["property"]: c["new"] for c in changes} == props
        assert props["seen"] == "2024-01-02T03:04:05+09:00"
    finally:
        await api.http.aclose()


async def test_history_pages_newest_first_and_filters(api: Api, euid: int) -> None:
    for n in range(7):
        await api.set(euid, "set", {"n": n, "other": f"v{n}"})
    pages: list[list[Any]] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 3, "property": "n"}
        if cursor:
            params["cursor"] = cursor
        page = await history(api, euid, **params)
        pages.append([c["new"] for c in page["changes"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [[6, 5, 4], [3, 2, 1], [0]]
    everything = (await history(api, euid, limit=500))["changes"]
    assert len(everything) == 14
    middle = everything[6]["at"]
    assert all(c["at"] >= middle for c in (await history(api, euid, **{"from": middle}))["changes"])
    assert all(c["at"] < middle for c in (await history(api, euid, to=middle))["changes"])


async def test_history_of_another_projects_user_is_not_found(app: Any, api: Api, euid: int) -> None:
    await api.set(euid, "set", {"plan": "gold"})
    other = await new_api(app, "other")
    try:
        r = await other.get("/v1/user/history", euid=euid)
        assert (r.status_code, r.json()["code"]) == (404, 40404)
        assert (await feed(other))["changes"] == []
    finally:
        await other.http.aclose()


async def test_the_feed_pages_oldest_first_with_after(api: Api, euid: int) -> None:
    for n in range(5):
        await api.set(euid, "set", {"n": n})
    seen: list[int] = []
    after = 0
    while True:
        page = await feed(api, after=after, limit=2)
        if not page["changes"]:
            assert page["last_seq"] == after
            break
        seen += [c["new"] for c in page["changes"]]
        assert page["last_seq"] == page["changes"][-1]["seq"]
        after = page["last_seq"]
    assert seen == [0, 1, 2, 3, 4]


async def test_a_long_poll_is_answered_by_the_next_commit(api: Api, euid: int) -> None:
    after = (await feed(api))["last_seq"]
    waiting = asyncio.ensure_future(feed(api, after=after, wait=30))
    engine = api.app.services.engine  # type: ignore[union-attr]
    while engine.feed.waiting() == 0:  # the poll is registered and asleep
        await asyncio.sleep(0.01)
    await api.set(euid, "set", {"plan": "gold"})
    page = await waiting
    assert [c["new"] for c in page["changes"]] == ["gold"]  # not an empty page at the timeout


async def test_a_long_poll_with_changes_waiting_answers_at_once(api: Api, euid: int) -> None:
    await api.set(euid, "set", {"plan": "gold"})
    page = await feed(api, after=0, wait=30)
    assert [c["new"] for c in page["changes"]] == ["gold"]


async def test_concurrent_writers_and_a_feed_consumer_lose_nothing(api: Api) -> None:
    euids = await api.register(*(f"u{i}" for i in range(20)))
    writes = 200

    async def write(i: int) -> None:
        r = await api.set(euids[i % len(euids)], "increase", {"n": 1})
        assert r.json()["code"] == 0

    async def consume() -> list[int]:
        seqs: list[int] = []
        after = 0
        while len(seqs) < writes:
            page = await feed(api, after=after, limit=7, wait=5)
            seqs += [c["seq"] for c in page["changes"]]
            after = page["last_seq"]
        return seqs

    consumer = asyncio.ensure_future(consume())
    await asyncio.gather(*(write(i) for i in range(writes)))
    seqs = await asyncio.wait_for(consumer, 60)
    assert seqs == list(range(1, writes + 1))


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/v1/changes", {"after": "x"}, "after"),
        ("/v1/changes", {"after": "-1"}, "after"),
        ("/v1/changes", {"after": "1.5"}, "after"),
        ("/v1/changes", {"limit": "0"}, "limit"),
        ("/v1/changes", {"limit": "1001"}, "limit"),
        ("/v1/changes", {"wait": "31"}, "wait"),
        ("/v1/changes", {"wait": "-1"}, "wait"),
        ("/v1/changes", {"wait": "soon"}, "wait"),
        ("/v1/changes", {"wait": "1e999"}, "wait"),
        ("/v1/changes", {"wait": "3.302110308065245e-79"}, ""),  # any JSON number form
        ("/v1/changes", {"wait": "0.000000000000001"}, ""),
        ("/v1/changes", {"limit": "5", "limt": "5"}, "limt"),  # unknown parameter
        ("/v1/changes", {"after": "1", "wait": "0", "after ": "2"}, "after"),
        ("/v1/user/history", {"euid": "1", "cursor": "nope"}, "cursor"),
        ("/v1/user/history", {"euid": "1", "cursor": "aDEyMw"}, ""),  # valid form: no 55004
        ("/v1/user/history", {"euid": "1", "limit": "501"}, "limit"),
        ("/v1/user/history", {"euid": "1", "from": "yesterday"}, "from"),
        ("/v1/user/history", {"euid": "1", "property": "Bad-Name"}, "property"),
    ],
)
async def test_bad_feed_and_history_parameters_are_55004(
    api: Api, euid: int, path: str, params: dict[str, str], message: str
) -> None:
    params = {k: (str(euid) if k == "euid" else v) for k, v in params.items()}
    r = await api.get(path, **params)
    if not message:
        assert r.json()["code"] == 0
        return
    assert (r.status_code, r.json()["code"]) == (400, 55004)
    assert message in r.json()["message"]


async def test_history_without_euid_is_40007(api: Api) -> None:
    r = await api.get("/v1/user/history")
    assert r.json()["code"] == 40007
