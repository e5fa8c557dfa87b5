"""Segments over HTTP on every backend (docs/segments.md): queries and their paging, every
bad condition a 55004 naming its leaf, saved segments and their members, membership kept
on every write (each family of operators) with segment.entered / segment.left changes in
the feed in order, the sweep of conditions relative to now, and projects kept apart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.api import Api, make_settings, new_api
from userprops import segments
from userprops.http.app import App
from userprops.storage import Storage, open_storage

Body = dict[str, Any]


async def query(api: Api, where: Any, **more: Any) -> Body:
    r = await api.post("/v1/segment/query", {"where": where, **more})
    assert r.status_code == 200, r.text
    data: Body = r.json()["data"]
    return data


async def save(api: Api, name: str, where: Any) -> Body:
    r = await api.post("/v1/segment", {"name": name, "where": where})
    assert r.status_code == 200, r.text
    data: Body = r.json()["data"]
    return data


async def members(api: Api, name: str, **params: Any) -> list[int]:
    r = await api.get("/v1/segment/members", name=name, **params)
    assert r.status_code == 200, r.text
    euids: list[int] = r.json()["data"]["euids"]
    return euids


async def in_segments(api: Api, euid: int) -> list[str]:
    r = await api.get("/v1/user/segments", euid=euid)
    assert r.status_code == 200, r.text
    names: list[str] = r.json()["data"]["segments"]
    return names


async def segment_changes(api: Api, after: int = 0) -> list[tuple[int, str, str]]:
    r = await api.get("/v1/changes", after=after, limit=1000)
    return [
        (c["euid"], c["property"], c["op"])
        for c in r.json()["data"]["changes"]
        if c["op"].startswith("segment.")
    ]


async def people(api: Api, *rows: Body) -> list[int]:
    euids = await api.register(*(f"u{i}" for i in range(len(rows))))
    for euid, props in zip(euids, rows, strict=True):
        if props:
            r = await api.set(euid, "set", props)
            assert r.json()["code"] == 0, r.text
    return euids


GOLD = {"property": "plan", "op": "eq", "value": "gold"}
ADULT = {"property": "age", "op": "between", "value": [18, 65]}


async def test_a_query_counts_and_pages_the_matching_users_in_euid_order(api: Api) -> None:
    ages = [10, 20, 30, 40, 70, 25, 33]
    plans = ["gold", "gold", "free", "gold", "gold", "gold", "gold"]
    euids = await people(api, *({"age": a, "plan": p} for a, p in zip(ages, plans, strict=True)))
    expected = [
        e for e, a, p in zip(euids, ages, plans, strict=True) if 18 <= a <= 65 and p == "gold"
    ]
    assert len(expected) == 4

    first = await query(api, {"and": [ADULT, GOLD]}, limit=3)
    assert first == {"count": 4, "euids": expected[:3], "next_cursor": first["next_cursor"]}
    rest = await query(api, {"and": [ADULT, GOLD]}, limit=3, cursor=first["next_cursor"])
    assert rest == {"count": 4, "euids": expected[3:], "next_cursor": None}
    assert await query(api, {"and": [ADULT, GOLD]}, limit=0) == {
        "count": 4,
        "euids": [],
        "next_cursor": None,
    }
    everyone = await query(api, {"or": [ADULT, {"not": ADULT}]})
    assert everyone["euids"] == euids and everyone["count"] == len(euids)


async def test_absent_values_match_only_not_set_and_the_complement(api: Api) -> None:
    with_plan, without = await people(api, {"plan": "gold"}, {"age": 3})
    assert (await query(api, {"property": "plan", "op": "ne", "value": "free"}))["euids"] == [
        with_plan
    ]
    assert (await query(api, {"property": "plan", "op": "not_set"}))["euids"] == [without]
    assert (await query(api, {"not": GOLD}))["euids"] == [without]
    assert (await query(api, {"property": "plan", "op": "not_in", "value": ["x"]}))["euids"] == [
        with_plan
    ]


BAD: list[tuple[str, Any, str]] = [
    ("not an object", ["plan"], "where: a condition must be a JSON object"),
    ("a branch not an object", {"and": [GOLD, 3]}, "where.and[1]: a condition must be"),
    ("undefined attribute", {"property": "nope", "op": "is_set"}, "where: attribute nope is"),
    (
        "wrong op for the type",
        {"or": [GOLD, {"property": "age", "op": "contains", "value": "1"}]},
        "where.or[1]: age is NUMBER: op must be one of",
    ),
    (
        "unparseable value",
        {"not": {"property": "age", "op": "gt", "value": "old"}},
        "where.not (age gt): expected NUMBER, got string",
    ),
    (
        "a bad element",
        {"property": "age", "op": "in", "value": [1, "x"]},
        "where (age in): value[1]: expected NUMBER",
    ),
    ("between needs two", {"property": "age", "op": "between", "value": [1]}, "[low, high]"),
    ("value missing", {"property": "plan", "op": "eq"}, "where (plan eq): value is missing"),
    ("is_set takes none", {"property": "plan", "op": "is_set", "value": 1}, "takes no value"),
    ("unknown op", {"property": "plan", "op": "like", "value": "g%"}, "op must be one of"),
    ("an empty and", {"and": []}, 'where: "and" must be a non-empty array'),
    ("two branches", {"and": [GOLD], "or": [GOLD]}, 'where: "and" takes no other key'),
    ("stray key", {**GOLD, "x": 1}, "where: expected"),
    (
        "days not a positive integer",
        {"property": "seen", "op": "within_last_days", "value": 0},
        "where (seen within_last_days): value must be a whole number of days",
    ),
    (
        "too deep",
        {
            "not": {
                "not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": GOLD}}}}}}}}
            }
        },
        "where.not.not.not.not.not.not.not.not.not.not: conditions nest at most 10 levels",
    ),
    ("too many leaves", {"or": [GOLD] * 51}, "where.or[50]: a condition has at most 50 leaves"),
]


@pytest.mark.parametrize(("where", "message"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
async def test_each_bad_condition_is_55004_naming_its_leaf(
    api: Api, where: Any, message: str
) -> None:
    await people(api, {"plan": "gold", "age": 30, "seen": "2026-01-01 00:00:00"})
    for path, body in (
        ("/v1/segment/query", {"where": where}),
        ("/v1/segment", {"name": "bad", "where": where}),
    ):
        r = await api.post(path, body)
        assert (r.status_code, r.json()["code"]) == (400, 55004), r.text
        assert message in r.json()["message"], r.json()["message"]


async def test_bad_query_fields_are_55004(api: Api) -> None:
    await people(api, {"plan": "gold"})
    for body in (
        {},
        {"where": GOLD, "limit": 1001},
        {"where": GOLD, "limit": -1},
        {"where": GOLD, "limit": True},
        {"where": GOLD, "cursor": 3},
        {"where": GOLD, "cursor": "bm90IG91cnM"},
    ):
        r = await api.post("/v1/segment/query", body)
        assert r.json()["code"] == 55004, body
    other = await query(api, {"property": "plan", "op": "is_set"}, limit=0)
    page = await query(api, GOLD, limit=0)
    assert other["next_cursor"] is None and page["count"] == 1
    await people(api, {"plan": "gold"}, {"plan": "gold"})
    first = await query(api, GOLD, limit=1)
    r = await api.post(
        "/v1/segment/query",
        {"where": {"property": "plan", "op": "is_set"}, "cursor": first["next_cursor"]},
    )
    assert r.json()["message"] == "cursor belongs to another query"


async def test_a_saved_segment_has_members_and_users_know_their_segments(api: Api) -> None:
    young, adult, old = await people(api, {"age": 12}, {"age": 30}, {"age": 80})
    created = await save(api, "adults", ADULT)
    assert created == {"name": "adults", "created": True, "count": 1}
    assert await members(api, "adults") == [adult]
    assert await in_segments(api, adult) == ["adults"]
    assert await in_segments(api, young) == []
    assert await segment_changes(api) == []  # a new segment's first members are no news

    replaced = await save(api, "adults", {"property": "age", "op": "gte", "value": 18})
    assert replaced == {"name": "adults", "created": False, "count": 2}
    assert await members(api, "adults") == [adult, old]
    assert await segment_changes(api) == [(old, "adults", "segment.entered")]

    page = (await api.get("/v1/segment/members", name="adults", limit=1)).json()["data"]
    assert page["euids"] == [adult] and page["count"] == 2 and page["complete"] is True
    rest = await api.get("/v1/segment/members", name="adults", limit=1, cursor=page["next_cursor"])
    assert rest.json()["data"]["euids"] == [old]
    missing = await api.get("/v1/segment/members", name="nobody")
    assert missing.json()["code"] == 55004
    unknown_user = await api.get("/v1/user/segments", euid=10**12)
    assert unknown_user.json()["code"] == 40404


# (the segment's condition, what is stored first, the write, whether it is in after)
FAMILIES: list[tuple[str, Body, Body, tuple[str, Body], bool]] = [
    ("STRING eq", GOLD, {"plan": "free"}, ("set", {"plan": "gold"}), True),
    (
        "STRING contains",
        {"property": "plan", "op": "contains", "value": "ol"},
        {"plan": "gold"},
        ("set", {"plan": "silver"}),
        False,
    ),
    ("NUMBER range", ADULT, {"age": 17}, ("increase", {"age": 1}), True),
    (
        "BOOL",
        {"property": "vip", "op": "eq", "value": True},
        {"vip": True},
        ("delete", {"vip": None}),
        False,
    ),
    (
        "DATETIME relative",
        {"property": "seen", "op": "within_last_days", "value": 7},
        {"seen": "2001-01-01 00:00:00"},
        ("set", {"seen": "NOW"}),
        True,
    ),
    (
        "LIST has",
        {"property": "tags", "op": "has", "value": "vip"},
        {"tags": ["a"]},
        ("add", {"tags": ["vip"]}),
        True,
    ),
    (
        "LIST eq, as a set",
        {"property": "tags", "op": "eq", "value": ["b", "a"]},
        {"tags": ["a", "b", "c"]},
        ("remove", {"tags": ["c"]}),
        True,
    ),
    (
        "not_set",
        {"property": "plan", "op": "not_set"},
        {"plan": "gold"},
        ("delete", {"plan": None}),
        True,
    ),
    ("not", {"not": GOLD}, {"plan": "free"}, ("set", {"plan": "gold"}), False),
]


@pytest.mark.parametrize(
    ("where", "first", "write", "inside"), [c[1:] for c in FAMILIES], ids=[c[0] for c in FAMILIES]
)
async def test_membership_follows_every_write(
    api: Api, where: Body, first: Body, write: tuple[str, Body], inside: bool
) -> None:
    (euid,) = await people(api, first)
    await save(api, "s", where)
    before = await in_segments(api, euid)
    assert before == ([] if inside else ["s"])
    op, props = write
    now = datetime.now(UTC).isoformat()
    props = {k: now if v == "NOW" else v for k, v in props.items()}
    r = await api.set(euid, op, props)
    assert r.json()["code"] == 0, r.text
    assert await in_segments(api, euid) == (["s"] if inside else [])
    assert await members(api, "s") == ([euid] if inside else [])
    moved = "segment.entered" if inside else "segment.left"
    assert await segment_changes(api) == [(euid, "s", moved)]


async def test_a_write_to_other_attributes_evaluates_no_segment(api: Api) -> None:
    (euid,) = await people(api, {"plan": "gold"})
    await save(api, "golden", GOLD)
    seq = (await api.get("/v1/changes")).json()["data"]["last_seq"]
    await api.set(euid, "set", {"age": 40, "tags": ["x"]})
    assert await segment_changes(api, seq) == []
    assert await in_segments(api, euid) == ["golden"]


async def test_entered_and_left_follow_the_value_changes_in_order(api: Api) -> None:
    (euid,) = await people(api, {"plan": "free", "age": 30})
    await save(api, "adults", ADULT)
    await save(api, "golden", GOLD)
    start = (await api.get("/v1/changes")).json()["data"]["last_seq"]
    await api.set(euid, "set", {"plan": "gold", "age": 10})  # enters golden, leaves adults
    await api.set(euid, "set", {"plan": "free"})  # leaves golden
    await api.set(euid, "set", {"plan": "gold", "age": 20})  # enters both
    feed = (await api.get("/v1/changes", after=start)).json()["data"]["changes"]
    assert [(c["property"], c["op"], c["old"], c["new"]) for c in feed] == [
        ("plan", "set", "free", "gold"),
        ("age", "set", 30, 10),
        ("adults", "segment.left", True, False),
        ("golden", "segment.entered", False, True),
        ("plan", "set", "gold", "free"),
        ("golden", "segment.left", True, False),
        ("plan", "set", "free", "gold"),
        ("age", "set", 10, 20),
        ("adults", "segment.entered", False, True),
        ("golden", "segment.entered", False, True),
    ]
    assert [c["seq"] for c in feed] == list(range(start + 1, start + 11))
    history = (await api.get("/v1/user/history", euid=euid, property="golden")).json()["data"]
    assert [c["op"] for c in history["changes"]] == [
        "segment.entered",
        "segment.left",
        "segment.entered",
    ]


async def test_one_request_entering_and_leaving_records_both_in_batch_order(api: Api) -> None:
    (euid,) = await people(api, {"plan": "free"})
    await save(api, "golden", GOLD)
    r = await api.post(
        "/v1/user/property/batch",
        {
            "updates": [
                {"euid": euid, "type": "set", "properties": {"plan": "gold"}},
                {"euid": euid, "type": "set", "properties": {"plan": "free"}},
            ]
        },
    )
    assert [item["code"] for item in r.json()["data"]] == [0, 0]
    assert await segment_changes(api) == [
        (euid, "golden", "segment.entered"),
        (euid, "golden", "segment.left"),
    ]
    assert await in_segments(api, euid) == []


async def test_new_users_enter_the_segments_of_users_without_values(api: Api) -> None:
    await people(api, {"plan": "gold"})
    await save(api, "no_plan", {"property": "plan", "op": "not_set"})
    (new,) = await api.register("newcomer")
    assert await in_segments(api, new) == ["no_plan"]
    assert await segment_changes(api) == [(new, "no_plan", "segment.entered")]


async def test_an_erased_user_is_in_no_segment(api: Api) -> None:
    (euid,) = await people(api, {"plan": "gold"})
    await save(api, "golden", GOLD)
    await api.post("/v1/user/delete", {"euid": euid})
    assert await members(api, "golden") == []
    assert (await query(api, GOLD))["count"] == 0


async def test_the_sweep_checks_conditions_relative_to_now_again(
    api: Api, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    recent = (datetime.now(UTC) - timedelta(hours=12)).isoformat()
    (euid,) = await people(api, {"seen": recent})
    await save(api, "active", {"property": "seen", "op": "within_last_days", "value": 1})
    assert await members(api, "active") == [euid]
    later = datetime.now(UTC) + timedelta(days=2)
    monkeypatch.setattr(segments, "now", lambda: later)
    assert app.writer is not None
    assert await segments.sweep(app.writer, 0) == 1
    assert await members(api, "active") == []
    feed = (await api.get("/v1/changes")).json()["data"]["changes"]
    assert [(c["property"], c["op"], c["source"]) for c in feed][-1] == (
        "active",
        "segment.left",
        "segment-sweep",
    )


def count_rechecks(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """What each :func:`segments.recheck_step` from here returns, in order."""
    steps: list[int | None] = []
    step = segments.recheck_step

    def counted(*args: Any) -> int | None:
        steps.append(step(*args))
        return steps[-1]

    monkeypatch.setattr(segments, "recheck_step", counted)
    return steps


def checked_ms(storage: Storage, project: str) -> dict[str, int | None]:
    """Each saved segment's stored instant of its last check."""
    with storage.read() as tx:
        found = tx.get_project(project)
        assert found is not None
        return {s.name: s.checked_ms for s in tx.list_segments(found.id)}


async def test_sweeps_check_again_only_whom_time_may_have_moved_since_the_stored_check(
    api: Api, app: App, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime.now(UTC)
    seen = {
        "recent": start - timedelta(hours=12),  # leaves active, enters dormant
        "future": start + timedelta(days=1),  # enters active when its day comes
        "old": start - timedelta(days=100),  # dormant throughout
    }
    euids = await people(api, *({"seen": at.isoformat()} for at in seen.values()))
    who = dict(zip(seen, euids, strict=True))
    await save(api, "active", {"property": "seen", "op": "within_last_days", "value": 1})
    await save(api, "dormant", {"property": "seen", "op": "more_than_days_ago", "value": 1})
    assert await members(api, "active") == [who["recent"]]
    assert await members(api, "dormant") == [who["old"]]
    built = await segment_changes(api)
    # Each build started at its save, after ``start``.
    saved_at = checked_ms(storage, api.project)
    low = int(start.timestamp() * 1000) - 1
    assert all(at is not None and low <= at < low + 60_000 for at in saved_at.values())
    # Two days later, in a process that has never swept (nothing is kept in memory): only
    # the users time can have moved since the stored instant are checked (one step of
    # recheck_step per segment, no build), and they move.
    later = start + timedelta(days=2)
    monkeypatch.setattr(segments, "now", lambda: later)
    steps = count_rechecks(monkeypatch)

    def no_rebuild(*args: Any) -> None:
        raise AssertionError("rebuilt")

    monkeypatch.setattr(segments, "_rebuild", no_rebuild)
    assert app.writer is not None
    assert await segments.sweep(app.writer, 0) == 2
    assert len(steps) == 2  # one step each, no build
    assert await members(api, "active") == [who["future"]]
    assert await members(api, "dormant") == sorted([who["old"], who["recent"]])
    assert sorted(await segment_changes(api, after=len(built))) == sorted(
        [
            (who["recent"], "active", "segment.left"),
            (who["future"], "active", "segment.entered"),
            (who["recent"], "dormant", "segment.entered"),
        ]
    )
    at = int(later.timestamp() * 1000)
    assert checked_ms(storage, api.project) == {"active": at, "dormant": at}
    # Nothing moved since: a sweep at the same instant changes nothing.
    assert await segments.sweep(app.writer, 0) == 2
    assert await members(api, "active") == [who["future"]]
    assert len(await segment_changes(api, after=len(built))) == 3


async def test_a_segment_whose_last_check_is_unknown_is_built_again_once(
    api: Api, app: App, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment saved before migration segment_checked has no stored instant: the first
    sweep builds it again in full (recording who moved) and stores the instant, and the
    next one checks only whom time may have moved."""
    start = datetime.now(UTC)
    (recent,) = await people(api, {"seen": (start - timedelta(hours=12)).isoformat()})
    await save(api, "active", {"property": "seen", "op": "within_last_days", "value": 1})
    with storage.transaction() as tx:  # as before the migration
        tx._execute("UPDATE segments SET checked_ms = NULL")  # type: ignore[attr-defined]
    later = start + timedelta(days=2)
    monkeypatch.setattr(segments, "now", lambda: later)
    assert app.writer is not None
    await segments.sweep(app.writer, 0)  # the rebuild, each span as a writer job
    assert await members(api, "active") == []
    assert (await segment_changes(api))[-1] == (recent, "active", "segment.left")
    assert checked_ms(storage, api.project) == {"active": int(later.timestamp() * 1000)}
    steps = count_rechecks(monkeypatch)
    assert await segments.sweep(app.writer, 0) == 1
    assert len(steps) == 1


def test_the_window_of_a_sweep_covers_both_edges_of_within_last_days() -> None:
    from userprops.conditions import And, Leaf, Op, Or
    from userprops.schema import AttrType

    since, until = datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 1, 11, tzinfo=UTC)
    within = Leaf("w", "seen", AttrType.DATETIME, Op.WITHIN_LAST_DAYS, 3)
    ago = Leaf("a", "paid", AttrType.DATETIME, Op.MORE_THAN_DAYS_AGO, 2)
    plain = Leaf("p", "plan", AttrType.STRING, Op.EQ, "gold")
    found = segments.window(And((within, plain, ago)), since, until)
    assert isinstance(found, Or)
    spans = [(leaf.name, leaf.op, leaf.value) for leaf in found.items]  # type: ignore[union-attr]
    day = timedelta(days=1)
    assert spans == [
        ("seen", Op.BETWEEN, (since - 3 * day, until - 3 * day)),
        ("seen", Op.BETWEEN, (since, until)),
        ("paid", Op.BETWEEN, (since - 2 * day, until - 2 * day)),
    ]
    only = segments.window(ago, since, until)
    assert only == Leaf(
        "sweep", "paid", AttrType.DATETIME, Op.BETWEEN, (since - 2 * day, until - 2 * day)
    )


async def test_projects_keep_their_segments_and_users_apart(api: Api, app: App) -> None:
    other = await new_api(app, "other")
    try:
        (mine,) = await people(api, {"plan": "gold"})
        (theirs,) = await people(other, {"plan": "gold"})
        await save(api, "golden", GOLD)
        assert (await query(api, GOLD))["euids"] == [mine]
        assert (await query(other, GOLD))["euids"] == [theirs]
        assert (await other.get("/v1/segment/members", name="golden")).json()["code"] == 55004
        assert (await other.get("/v1/user/segments", euid=mine)).json()["code"] == 40404
        await save(other, "golden", {"property": "plan", "op": "ne", "value": "gold"})
        assert await members(api, "golden") == [mine]
        assert await members(other, "golden") == []
        await other.set(theirs, "set", {"plan": "free"})
        assert await members(api, "golden") == [mine]
        assert await members(other, "golden") == [theirs]
        assert await segment_changes(api) == []
    finally:
        await other.http.aclose()


async def test_two_processes_sweeping_at_once_record_each_move_once(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several server processes on one PostgreSQL database each sweep: started from the
    same stored instant, the users they both check move once, and the instant moves on."""
    stores = [open_storage(pg_url) for _ in range(2)]
    stores[0].migrate()
    apps = [App(make_settings(pg_url, segment_sweep_interval=0), s) for s in stores]
    for app in apps:
        app.start()
    try:
        api = await new_api(apps[0], "shop")
        start = datetime.now(UTC)
        seen = [start - timedelta(hours=h) for h in (1, 12, 20, 30)]
        euids = await people(api, *({"seen": at.isoformat()} for at in seen))
        await save(api, "active", {"property": "seen", "op": "within_last_days", "value": 1})
        built = await segment_changes(api)
        later = start + timedelta(hours=13)  # the 12 and 20 hours old leave
        monkeypatch.setattr(segments, "now", lambda: later)
        writers = [app.writer for app in apps]
        assert all(w is not None for w in writers)
        await asyncio.gather(*(segments.sweep(w, 0) for w in writers if w is not None))
        assert await members(api, "active") == [euids[0]]
        assert sorted(await segment_changes(api, after=len(built))) == [
            (euids[1], "active", "segment.left"),
            (euids[2], "active", "segment.left"),
        ]
        assert checked_ms(stores[1], "shop") == {"active": int(later.timestamp() * 1000)}
        await api.http.aclose()
    finally:
        for app, store in zip(apps, stores, strict=True):
            app.stop()
            store.close()
