"""Segment queries in SQL give what the reference semantics give (userprops.conditions.
matches): random users with random values, random conditions, the same answer, on every
backend. The counts, pages walked with a cursor, spans (how saved segments are built),
with drivers counted as large or small (the planner's two ways)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from tests.support.conditions import (
    ATTRIBUTES,
    LIMITS,
    LONG,
    NOW,
    Population,
    conditions,
    populations,
)
from userprops.conditions import matches, parse
from userprops.schema import (
    INT64_MAX,
    SchemaMode,
    Typed,
    encode,
)
from userprops.storage import Storage, StoredValue, segment_sql

_slugs = (f"p{i}" for i in itertools.count())


@pytest.fixture(params=[segment_sql.COUNT_CAP, 2], ids=["small-drivers", "large-drivers"])
def cap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The planner's cap: at 2 every driver with two candidates counts as large."""
    monkeypatch.setattr(segment_sql, "COUNT_CAP", request.param)
    yield request.param


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
