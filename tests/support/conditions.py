"""Random users and conditions over a fixed set of typed attributes, for the segment
tests (hypothesis strategies): the values each type holds, edge values included, and
condition trees of every operator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from userprops.conditions import OPERATORS, Op
from userprops.config import Limits
from userprops.schema import (
    DATETIME_MAX,
    DATETIME_MIN,
    INT64_MAX,
    INT64_MIN,
    AttrType,
    Typed,
)

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

Population = list[tuple[dict[str, Typed], dict[str, Typed]]]
