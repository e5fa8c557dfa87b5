"""Saved segments' membership at the unit seams (userprops.segments), on every backend: a
build a span of users at a time with writes between spans, a replaced condition's changes,
several users and segments in one group of writes, and on PostgreSQL a write waiting for
a build's span in another process."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from userprops import segments
from userprops.auth import Principal
from userprops.conditions import Condition
from userprops.config import Limits
from userprops.operations import Op
from userprops.properties import PropertyJob, PropertyRequest, run_property_jobs
from userprops.schema import AttrType, SchemaMode
from userprops.storage import Storage, StoredValue, Transaction

ADULT = {"property": "age", "op": "gte", "value": 18}


def setup(storage: Storage, ages: list[int]) -> tuple[int, list[int]]:
    with storage.transaction() as tx:
        pid = tx.create_project("p", SchemaMode.AUTO, "UTC").id
        tx.define_attribute(pid, "age", AttrType.NUMBER)
        tx.define_attribute(pid, "plan", AttrType.STRING)
        euids = [tx.create_user(pid) for _ in ages]
        for euid, age in zip(euids, ages, strict=True):
            tx.put_values(pid, euid, {"age": StoredValue(AttrType.NUMBER, str(age))})
    return pid, euids


def job(pid: int, euid: int, op: Op, props: dict[str, object]) -> PropertyJob:
    who = Principal(0, "key", pid, SchemaMode.AUTO, UTC, source="test")
    return PropertyJob(who, PropertyRequest(euid, op, props), Limits(), {})


def write(storage: Storage, *jobs: PropertyJob) -> None:
    with storage.transaction() as tx:
        results = run_property_jobs(tx, list(jobs))
    assert all(not isinstance(r, Exception) for r in results), results


def members(storage: Storage, pid: int, name: str) -> list[int]:
    with storage.read() as tx:
        stored = tx.get_segment(pid, name)
        assert stored is not None
        return tx.members_between(pid, stored.id, 0, 2**63 - 1)


def moves(storage: Storage, pid: int) -> list[tuple[int, str, str]]:
    with storage.read() as tx:
        return [
            (c.euid, c.property, c.op)
            for c in tx.list_changes(pid, 0, 1000)
            if c.op.startswith("segment.")
        ]


def step(storage: Storage, pid: int, name: str) -> bool:
    with storage.transaction() as tx:
        return segments.build_step(pid, name, "test", True, tx)


def define(storage: Storage, pid: int, name: str, where: object) -> bool:
    with storage.transaction() as tx:
        return segments.define(tx, pid, name, where, Limits(), UTC)


def test_a_build_goes_a_span_at_a_time_and_writes_between_spans_stay_exact(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segments, "BUILD_SPAN", 2)
    pid, (a, b, c, d, _e) = setup(storage, [30, 10, 40, 50, 5])
    assert define(storage, pid, "adults", ADULT) is True
    assert step(storage, pid, "adults") is False  # a and b
    assert members(storage, pid, "adults") == [a]
    # b is built: the write keeps it (and records it); d is not yet: the build will.
    write(storage, job(pid, b, Op.INCREASE, {"age": 10}), job(pid, d, Op.SET, {"age": 1}))
    assert members(storage, pid, "adults") == [a, b]
    while not step(storage, pid, "adults"):
        pass
    assert members(storage, pid, "adults") == [a, b, c]
    assert moves(storage, pid) == [(b, "adults", "segment.entered")]  # the build is quiet
    with storage.read() as tx:
        stored = tx.get_segment(pid, "adults")
    assert stored is not None and stored.built_to is None and not stored.quiet


def test_a_replaced_condition_records_who_entered_and_left(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segments, "BUILD_SPAN", 2)
    pid, (a, b, c) = setup(storage, [30, 10, 70])
    define(storage, pid, "s", ADULT)
    segments.build(_runner(storage), pid, "s", "test")
    assert define(storage, pid, "s", {"property": "age", "op": "lt", "value": 65}) is False
    segments.build(_runner(storage), pid, "s", "test")
    assert members(storage, pid, "s") == [a, b]
    assert moves(storage, pid) == [(b, "s", "segment.entered"), (c, "s", "segment.left")]


def _runner(storage: Storage) -> Callable[[Callable[[Transaction], bool]], bool]:
    def run(work: Callable[[Transaction], bool]) -> bool:
        with storage.transaction() as tx:
            return work(tx)

    return run


def test_one_group_moves_several_users_in_several_segments(storage: Storage) -> None:
    pid, (a, b) = setup(storage, [30, 10])
    for name, where in (
        ("adults", ADULT),
        ("golden", {"property": "plan", "op": "eq", "value": "gold"}),
        ("golden_adults", {"and": [ADULT, {"property": "plan", "op": "eq", "value": "gold"}]}),
    ):
        define(storage, pid, name, where)
        segments.build(_runner(storage), pid, name, "test")
    write(
        storage,
        job(pid, a, Op.SET, {"plan": "gold"}),
        job(pid, b, Op.SET, {"age": 20, "plan": "gold"}),
        job(pid, a, Op.DELETE, {"age": None}),
    )
    assert moves(storage, pid) == [
        (a, "golden", "segment.entered"),
        (a, "golden_adults", "segment.entered"),
        (b, "adults", "segment.entered"),
        (b, "golden", "segment.entered"),
        (b, "golden_adults", "segment.entered"),
        (a, "adults", "segment.left"),
        (a, "golden_adults", "segment.left"),
    ]
    assert members(storage, pid, "adults") == [b]
    assert members(storage, pid, "golden") == [a, b]
    assert members(storage, pid, "golden_adults") == [b]
    with storage.read() as tx:
        assert tx.user_segments(pid, a) == ["golden"]
        assert tx.user_segments(pid, b) == ["adults", "golden", "golden_adults"]


def test_a_write_waits_for_a_build_span_in_another_process_then_keeps_it(
    two: tuple[Storage, Storage],
) -> None:
    first, second = two
    pid, (a,) = setup(first, [10])
    entered = threading.Event()
    results: list[object] = []

    def writer() -> None:
        entered.wait()
        results.extend(second.run_batch([job(pid, a, Op.SET, {"age": 40})]))

    thread = threading.Thread(target=writer)
    thread.start()
    with first.transaction() as tx:  # what segments.define and a build span do
        tx.lock_segments(pid)
        cond = segments.condition_json(_adult(tx, pid))
        stored, _ = tx.save_segment(pid, "adults", cond, 1_000)
        entered.set()  # the write starts now, and must wait for this commit
        thread.join(0.2)
        tx.set_segment_built(stored.id, None)
    thread.join()
    assert [type(r).__name__ for r in results] == ["PropertyOutcome"]
    assert members(first, pid, "adults") == [a]  # it read the new segment after waiting
    assert moves(first, pid) == [(a, "adults", "segment.entered")]


def test_a_segment_keeps_the_instant_of_its_last_check_until_a_build_starts_again(
    storage: Storage,
) -> None:
    """``checked_ms``: set when a build starts (saved, replaced, rebuilt) and moved by a
    sweep's check only from the instant that sweep started from, on a built segment."""
    pid, _ = setup(storage, [10])

    def checked() -> int | None:
        with storage.read() as tx:
            stored = tx.get_segment(pid, "adults")
            assert stored is not None
            return stored.checked_ms

    def mark(since: int, at: int) -> bool:
        with storage.transaction() as tx:
            stored = tx.get_segment(pid, "adults")
            assert stored is not None
            return tx.mark_segment_checked(stored.id, since, at)

    with storage.transaction() as tx:
        cond = segments.condition_json(_adult(tx, pid))
        stored, created = tx.save_segment(pid, "adults", cond, 1_000)
    assert created and stored.checked_ms == 1_000 == checked()
    assert not mark(1_000, 2_000)  # still building: a check would not cover it
    with storage.transaction() as tx:
        tx.set_segment_built(stored.id, None)
    assert mark(1_000, 2_000) and checked() == 2_000
    assert not mark(1_000, 3_000) and checked() == 2_000  # another check came first
    with storage.transaction() as tx:
        tx.rebuild_segment(stored.id, 2_500)
        tx.set_segment_built(stored.id, None)
    assert checked() == 2_500
    assert not mark(2_000, 4_000) and checked() == 2_500  # a build started meanwhile
    with storage.transaction() as tx:
        replaced, created = tx.save_segment(pid, "adults", cond, 5_000)
    assert not created and replaced.checked_ms == 5_000 == checked()


def _adult(tx: Transaction, pid: int) -> Condition:
    return segments.parse_where(tx, pid, ADULT, Limits(), UTC)


# Property tests on a storage fixture: each example runs real statements.
fuzzed = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ITEMS = ["a", "b", "c", "d"]
_projects = itertools.count()
list_ops = st.tuples(
    st.integers(0, 1),
    st.sampled_from([Op.SET, Op.ADD, Op.REMOVE, Op.DELETE]),
    st.lists(st.sampled_from(ITEMS), min_size=1, max_size=3, unique=True),
    st.booleans(),  # whether this write starts a new group
)


@settings(fuzzed, max_examples=25)
@given(writes=st.lists(list_ops, min_size=1, max_size=12))
def test_list_elements_follow_every_write_in_any_grouping(
    storage: Storage, writes: list[tuple[int, Op, list[str], bool]]
) -> None:
    """What a LIST's `has` finds (its elements as rows) is what the stored lists hold,
    after sets, adds, removes and deletes grouped any way."""
    with storage.transaction() as tx:
        slug = f"l{next(_projects)}"
        pid = tx.create_project(slug, SchemaMode.AUTO, "UTC").id
        tx.define_attribute(pid, "tags", AttrType.LIST)
        euids = [tx.create_user(pid), tx.create_user(pid)]
    groups: list[list[PropertyJob]] = []
    for who, op, items, new_group in writes:
        props: dict[str, object] = {"tags": "" if op is Op.DELETE else items}
        if not groups or new_group:
            groups.append([])
        groups[-1].append(job(pid, euids[who], op, props))
    for group in groups:
        with storage.transaction() as tx:
            run_property_jobs(tx, group)
    with storage.read() as tx:
        stored = storage.read_users([(pid, e) for e in euids])
        lists = [decode_list(values) for values in stored]
        for item in ITEMS:
            cond = segments.parse_where(
                tx, pid, {"property": "tags", "op": "has", "value": item}, Limits(), UTC
            )
            holding = [e for e, held in zip(euids, lists, strict=True) if item in held]
            assert tx.match_page(pid, cond, datetime.now(UTC), 0, 10) == holding, item


def decode_list(values: dict[str, StoredValue] | None) -> list[str]:
    value = (values or {}).get("tags")
    return [] if value is None else [str(item) for item in json.loads(value.text)]


GOLD = {"property": "plan", "op": "eq", "value": "gold"}
KEPT = {"adults": ADULT, "golden": GOLD, "golden_adults": {"and": [ADULT, GOLD]}}
member_ops = st.tuples(
    st.integers(0, 2),  # whose
    st.one_of(  # a value set, or deleted (None)
        st.tuples(st.just("age"), st.sampled_from([None, 10, 30])),
        st.tuples(st.just("plan"), st.sampled_from([None, "gold", "free"])),
    ),
    st.booleans(),  # whether this write starts a new group
    st.booleans(),  # whether the segments are saved again (rebuilt) before it
)


@settings(fuzzed, max_examples=20)
@given(writes=st.lists(member_ops, min_size=1, max_size=10))
def test_each_users_segments_are_its_members_after_writes_and_builds(
    storage: Storage, writes: list[tuple[int, tuple[str, object], bool, bool]]
) -> None:
    """What a user's segments say (on PostgreSQL, the copy in the users row) is what the
    segments' member lists hold and what the conditions give, after writes grouped any
    way, values set and deleted, and segments saved again and rebuilt between them."""
    with storage.transaction() as tx:
        pid = tx.create_project(f"m{next(_projects)}", SchemaMode.AUTO, "UTC").id
        tx.define_attribute(pid, "age", AttrType.NUMBER)
        tx.define_attribute(pid, "plan", AttrType.STRING)
        euids = [tx.create_user(pid) for _ in range(3)]
    model: list[dict[str, object]] = [{} for _ in euids]

    def save_all() -> None:
        for name, where in KEPT.items():
            define(storage, pid, name, where)
            segments.build(_runner(storage), pid, name, "test")

    save_all()
    groups: list[list[PropertyJob]] = []
    for who, (name, value), new_group, rebuild in writes:
        if rebuild:
            for group in groups:
                write(storage, *group)
            groups = []
            save_all()
        if not groups or new_group:
            groups.append([])
        if value is None:
            groups[-1].append(job(pid, euids[who], Op.DELETE, {name: value}))
            model[who].pop(name, None)
        else:
            groups[-1].append(job(pid, euids[who], Op.SET, {name: value}))
            model[who][name] = value
    for group in groups:
        write(storage, *group)
    for euid, values in zip(euids, model, strict=True):
        adult = isinstance(age := values.get("age"), int) and age >= 18
        golden = values.get("plan") == "gold"
        expected = [
            n for n, held in zip(KEPT, (adult, golden, adult and golden), strict=True) if held
        ]
        with storage.read() as tx:
            assert tx.user_segments(pid, euid) == expected, (euid, values)
        listed = [n for n in KEPT if euid in members(storage, pid, n)]
        assert listed == expected, (euid, values)
