"""The reference semantics of segment conditions (userprops.conditions), with plain data:
every operator on a present and an absent value, the complement, parsing of values as
input values of the type, and conditions written back to JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings

from tests.support.conditions import ATTRIBUTES, conditions
from userprops.conditions import (
    And,
    Leaf,
    Not,
    Op,
    attributes,
    is_relative,
    matches,
    parse,
    referenced_names,
    to_wire,
)
from userprops.config import Limits
from userprops.errors import InvalidParameters
from userprops.schema import AttrType, Typed

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
TYPES = {
    "plan": AttrType.STRING,
    "age": AttrType.NUMBER,
    "vip": AttrType.BOOL,
    "seen": AttrType.DATETIME,
    "tags": AttrType.LIST,
}
USER: dict[str, Typed] = {
    "plan": "gold",
    "age": Decimal("30.5"),
    "vip": False,
    "seen": NOW - timedelta(days=3),
    "tags": ("b", "a"),
}

# (property, op, value, matches USER, matches a user without the attribute)
CASES: list[tuple[str, str, Any, bool, bool]] = [
    ("plan", "is_set", None, True, False),
    ("plan", "not_set", None, False, True),
    ("plan", "eq", "gold", True, False),
    ("plan", "eq", "Gold", False, False),
    ("plan", "ne", "free", True, False),
    ("plan", "ne", "gold", False, False),
    ("plan", "in", ["free", "gold"], True, False),
    ("plan", "not_in", ["free"], True, False),
    ("plan", "not_in", ["gold"], False, False),
    ("plan", "contains", "ol", True, False),
    ("plan", "contains", "OL", False, False),
    ("plan", "starts_with", "go", True, False),
    ("plan", "ends_with", "ld", True, False),
    ("plan", "ends_with", "gold!", False, False),
    ("age", "eq", 30.5, True, False),
    ("age", "eq", "30.50", False, False),  # a string is no NUMBER: rejected below
    ("age", "gt", 30, True, False),
    ("age", "gte", 30.5, True, False),
    ("age", "lt", 30.5, False, False),
    ("age", "lte", 30.5, True, False),
    ("age", "between", [30.5, 31], True, False),
    ("age", "between", [31, 30], False, False),
    ("vip", "eq", False, True, False),
    ("vip", "ne", True, True, False),
    ("seen", "gt", "2026-06-12 11:59:59", True, False),
    ("seen", "eq", (NOW - timedelta(days=3)).isoformat(), True, False),
    ("seen", "eq", int((NOW - timedelta(days=3)).timestamp() * 1000), True, False),
    ("seen", "within_last_days", 3, True, False),
    ("seen", "within_last_days", 2, False, False),
    ("seen", "more_than_days_ago", 2, True, False),
    ("seen", "more_than_days_ago", 3, False, False),
    ("tags", "has", "a", True, False),
    ("tags", "has_any", ["z", "b"], True, False),
    ("tags", "has_all", ["a", "b"], True, False),
    ("tags", "has_all", ["a", "z"], False, False),
    ("tags", "eq", ["a", "b"], True, False),  # as sets: order does not matter
    ("tags", "eq", "a", False, False),  # one string is a one-element list
    ("tags", "ne", ["a"], True, False),
    ("tags", "in", [["a"], ["a", "b"]], True, False),
    ("tags", "not_in", [["a", "b", "c"]], True, False),
]


def exact(value: Any) -> Any:
    """JSON as the server decodes it: non-integral numbers as Decimal."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, list):
        return [exact(v) for v in value]
    return value


@pytest.mark.parametrize(("name", "op", "value", "present", "absent"), CASES)
def test_each_operator_on_a_present_and_an_absent_value(
    name: str, op: str, value: Any, present: bool, absent: bool
) -> None:
    raw: dict[str, Any] = {"property": name, "op": op}
    if value is not None:
        raw["value"] = exact(value)
    if name == "age" and isinstance(value, str):
        with pytest.raises(InvalidParameters, match="expected NUMBER"):
            parse(raw, TYPES, Limits(), UTC)
        return
    cond = parse(raw, TYPES, Limits(), UTC)
    assert matches(cond, USER, NOW) is present
    without = {k: v for k, v in USER.items() if k != name}
    assert matches(cond, without, NOW) is absent
    assert matches(Not(cond), without, NOW) is not absent


def test_datetime_values_without_an_offset_are_read_in_the_project_zone() -> None:
    raw = {"property": "seen", "op": "eq", "value": "2026-06-12 21:00:00"}
    in_tokyo = parse(raw, TYPES, Limits(), ZoneInfo("Asia/Tokyo"))
    assert isinstance(in_tokyo, Leaf)
    assert in_tokyo.value == datetime(2026, 6, 12, 12, tzinfo=UTC)
    assert to_wire(in_tokyo, ZoneInfo("Asia/Tokyo"))["value"] == "2026-06-12T21:00:00+09:00"


def test_what_a_condition_reads() -> None:
    raw = {
        "and": [
            {"property": "plan", "op": "is_set"},
            {"not": {"property": "seen", "op": "within_last_days", "value": 1}},
        ]
    }
    cond = parse(raw, TYPES, Limits(), UTC)
    assert isinstance(cond, And)
    assert attributes(cond) == {"plan", "seen"}
    assert is_relative(cond)
    assert referenced_names({"or": [raw, {"property": 3}, "x", {"not": {"property": "age"}}]}) == {
        "plan",
        "seen",
        "age",
    }
    assert Op.HAS.value == "has"


@settings(max_examples=300, deadline=None)
@given(conditions)
def test_a_condition_written_back_parses_to_itself(raw: Any) -> None:
    cond = parse(raw, ATTRIBUTES, Limits(), UTC)
    assert parse(to_wire(cond), ATTRIBUTES, Limits(), UTC) == cond
