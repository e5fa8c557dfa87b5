"""Segment queries in SQL give what the reference semantics give (userprops.conditions.
matches): random users with random values, random conditions, the same answer, on every
backend. The counts, pages walked with a cursor, spans (how saved segments are built),
with drivers counted as large or small (the planner's two ways)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from userprops.conditions import OPERATORS, Op, matches, parse
from userprops.config import Limits
from userprops.schema import (
    DATETIME_MAX,
    DATETIME_MIN,
    INT64_MAX,
    INT64_MIN,
    AttrType,
    SchemaMode,
    Typed,
    encode,
)
from userprops.storage import Storage, StoredValue, segment_sql

NOW = datetime(2026, 6, 15, 12, 0, 0, 123456, tzinfo=UTC)
LIMITS = Limits()
ATTRIBUTES = {
    "s": AttrType.STRING,
    "t": AttrType.STRING,
    "n": AttrType.NUMBER,
    "m": AttrType.NUMBER,
    "d": AttrType.DATETIME,
    "b": AttrType.BOOL,
    "l": AttrType.LIST,
}
LONG = "x" * 200
STRINGS = [
    *("a", "b", "ab", "ba", "abc", "A", "é", "a%b", "_", "%", "a_c", "\ud7ff", "\ue000"),
    *("\uffff", "\U00010000", "\U0010ffff", "\U0010ffff\U0010ffff", "x" * 199, LONG),
    *(LONG + "a", LONG + "b", LONG + "ab", "x" * 230),
]
PIECES = ["a", "b", "ab", "x", "xa", "%", "_", "é", "\U0010ffff", "x" * 199, LONG, LONG + "a"]
NUMBERS = [
    Decimal(text)
    for text in (
        *("0", "1", "-1", "0.5", "-0.5", "0.05", "-0.05", "10", "-10", "5", "-5", "9.99"),
        *("1234567890123456789.123456789", "-1234567890123456789.123456789"),
        *(str(INT64_MAX), str(INT64_MIN), "0.0000000000000000000000000001"),
        *("-0.0000000000000000000000000001", "12.5", "-12.5", "100", "99.999"),
    )
]
DATETIMES = [
    NOW,
    NOW - timedelta(days=1),
    NOW - timedelta(days=2, microseconds=1),
    NOW - timedelta(days=30),
    NOW + timedelta(days=1),
    NOW + timedelta(microseconds=1),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    DATETIME_MIN,
    DATETIME_MAX,
]
ELEMENTS = ["t1", "t2", "t3", "é", "%", "x" * 20]

# Small pools, so that conditions often name exactly a value some user holds.
numbers = st.sampled_from(NUMBERS) | st.integers(-3, 3).map(Decimal)
datetimes = st.sampled_from(DATETIMES) | st.integers(-40, 40).map(
    lambda days: NOW + timedelta(days=days)
)
elements = st.sampled_from(ELEMENTS)
lists = st.lists(elements, min_size=1, max_size=4, unique=True).map(tuple)
values: dict[AttrType, st.SearchStrategy[Typed]] = {
    AttrType.STRING: st.sampled_from(STRINGS),
    AttrType.NUMBER: numbers,
    AttrType.DATETIME: datetimes,
    AttrType.BOOL: st.booleans(),
    AttrType.LIST: lists,
}


def raw(kind: AttrType, value: Typed) -> Any:
    """A typed value as a condition writes it in JSON."""
    if kind is AttrType.NUMBER:
        assert isinstance(value, Decimal)
        return int(value) if value == value.to_integral_value() else value
    if kind is AttrType.DATETIME:
        assert isinstance(value, datetime)
        return value.isoformat()
    if kind is AttrType.LIST:
        assert isinstance(value, tuple)
        return list(value)
    return value


def leaf_values(kind: AttrType, op: Op) -> st.SearchStrategy[Any]:
    one = values[kind].map(lambda v: raw(kind, v))
    if op in (Op.IN, Op.NOT_IN):
        return st.lists(one, min_size=1, max_size=3)
    if op is Op.BETWEEN:
        return st.lists(one, min_size=2, max_size=2)
    if op in (Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH):
        return st.sampled_from(PIECES) | st.sampled_from(STRINGS)
    if op is Op.HAS:
        return elements
    if op in (Op.HAS_ANY, Op.HAS_ALL):
        return st.lists(elements, min_size=1, max_size=3)
    if op in (Op.WITHIN_LAST_DAYS, Op.MORE_THAN_DAYS_AGO):
        return st.integers(1, 45)
    return one


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(ATTRIBUTES)))
    kind = ATTRIBUTES[name]
    op = draw(st.sampled_from(OPERATORS[kind]))
    leaf: dict[str, Any] = {"property": name, "op": op.value}
    if op not in (Op.IS_SET, Op.NOT_SET):
        leaf["value"] = draw(leaf_values(kind, op))
    return leaf


conditions = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"and": items}),
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"or": items}),
        inner.map(lambda item: {"not": item}),
    ),
    max_leaves=6,
)
user_values = st.fixed_dictionaries(
    {},
    optional={name: values[kind] for name, kind in ATTRIBUTES.items()},
)
populations = st.lists(st.tuples(user_values, user_values), min_size=0, max_size=12)

_slugs = (f"p{i}" for i in itertools.count())


@pytest.fixture(params=[segment_sql.COUNT_CAP, 2], ids=["small-drivers", "large-drivers"])
def cap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The planner's cap: at 2 every driver with two candidates counts as large."""
    monkeypatch.setattr(segment_sql, "COUNT_CAP", request.param)
    yield request.param


Population = list[tuple[dict[str, Typed], dict[str, Typed]]]


def _store(storage: Storage, population: Population) -> tuple[int, dict[int, dict[str, Typed]]]:
    """A new project whose users hold ``population``: each user written with its first
    values, then with its second (overwriting, and deleting what the second lacks), so the
    write path's upkeep of keys and list elements is what the queries read."""
    with storage.transaction() as tx:
        pid = tx.create_project(next(_slugs), SchemaMode.AUTO, "UTC").id
        for name, kind in ATTRIBUTES.items():
            tx.define_attribute(pid, name, kind)
        final: dict[int, dict[str, Typed]] = {}
        for first, second in population:
            euid = tx.create_user(pid)
            tx.put_values(pid, euid, _stored(first))
            tx.put_values(pid, euid, _stored(second))
            tx.delete_values(pid, euid, sorted(set(first) - set(second)))
            final[euid] = second
        final[tx.create_user(pid)] = {}  # a user without any value
    return pid, final


def _stored(values: dict[str, Typed]) -> dict[str, StoredValue]:
    return {n: StoredValue(ATTRIBUTES[n], encode(ATTRIBUTES[n], v)) for n, v in values.items()}


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(population=populations, wheres=st.lists(conditions, min_size=1, max_size=8))
@example(
    population=[({}, {"s": LONG + "a"}), ({}, {"s": LONG + "b"}), ({}, {"s": LONG})],
    wheres=[{"property": "s", "op": "eq", "value": LONG + "a"}],
)
@example(
    population=[({"l": ("t1", "t2")}, {"l": ("t2", "t1")}), ({}, {"l": ("t1",)})],
    wheres=[{"not": {"property": "l", "op": "eq", "value": ["t1", "t2"]}}],
)
@example(
    population=[
        ({}, {"n": Decimal("-0.5")}),
        ({}, {"n": Decimal("-0.55")}),
        ({}, {"n": Decimal(0)}),
    ],
    wheres=[{"property": "n", "op": "between", "value": [Decimal("-0.5"), 0]}],
)
def test_sql_answers_what_the_reference_answers(
    storage: Storage, cap: int, population: Population, wheres: list[dict[str, Any]]
) -> None:
    pid, users = _store(storage, population)
    for where in wheres:
        _check(storage, pid, users, where)


def _check(storage: Storage, pid: int, users: dict[int, dict[str, Typed]], where: Any) -> None:
    cond = parse(where, ATTRIBUTES, LIMITS, UTC)
    expected = [e for e in sorted(users) if matches(cond, users[e], NOW)]
    with storage.read() as tx:
        assert tx.count_matching(pid, cond, NOW) == len(expected), where
        assert tx.match_page(pid, cond, NOW, 0, 1000) == expected, where
        walked, after = [], 0
        while page := tx.match_page(pid, cond, NOW, after, 2):
            walked += page
            after = page[-1]
        assert walked == expected
        middle = sorted(users)[len(users) // 2] if users else 0
        assert tx.match_span(pid, cond, NOW, 0, middle) == [e for e in expected if e <= middle]
        assert tx.match_span(pid, cond, NOW, middle, INT64_MAX) == [
            e for e in expected if e > middle
        ]
