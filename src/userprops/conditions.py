"""Segment conditions (docs/segments.md): the JSON condition tree, checked against the
project's attribute types, and the reference semantics of every operator.

Pure: no I/O. :func:`parse` turns a decoded ``where`` into a :data:`Condition`, or raises
55004 naming the node at fault by its path (``where.and[1]``). :func:`matches` says
whether a user's values match: it is the reference every backend's SQL is checked against
(tests/storage/test_segment_sql.py), as :mod:`userprops.operations` is for writes, and it is what
keeps saved segments' membership on every write.

A leaf matches only a user who has the attribute, except ``not_set``; ``{"not": c}`` is
the exact complement of ``c``. ``within_last_days`` and ``more_than_days_ago`` compare with
``now``, which the caller passes, so that a query and its reference agree on it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from userprops.config import Limits
from userprops.errors import InvalidParameters
from userprops.schema import (
    AttrType,
    Rejected,
    Typed,
    check_name,
    checked_text,
    parse_list,
    parse_value,
    to_json,
)

MAX_DEPTH = 10
MAX_LEAVES = 50
MAX_VALUES = 1000  # elements of an `in`, `not_in`, `has_any` or `has_all` value
MAX_DAYS = 100_000  # within_last_days and more_than_days_ago
DAY = timedelta(days=1)


class Operator(enum.StrEnum):
    IS_SET = "is_set"
    NOT_SET = "not_set"
    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    BETWEEN = "between"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    HAS = "has"
    HAS_ANY = "has_any"
    HAS_ALL = "has_all"
    WITHIN_LAST_DAYS = "within_last_days"
    MORE_THAN_DAYS_AGO = "more_than_days_ago"


Op = Operator
_EVERY = (Op.IS_SET, Op.NOT_SET, Op.EQ, Op.NE, Op.IN, Op.NOT_IN)
_ORDERED = (Op.GT, Op.GTE, Op.LT, Op.LTE, Op.BETWEEN)
OPERATORS: dict[AttrType, tuple[Operator, ...]] = {
    AttrType.STRING: (*_EVERY, Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH),
    AttrType.NUMBER: (*_EVERY, *_ORDERED),
    AttrType.BOOL: _EVERY,
    AttrType.DATETIME: (*_EVERY, *_ORDERED, Op.WITHIN_LAST_DAYS, Op.MORE_THAN_DAYS_AGO),
    AttrType.LIST: (*_EVERY, Op.HAS, Op.HAS_ANY, Op.HAS_ALL),
}
"""The operators each attribute type allows (docs/segments.md)."""
RELATIVE = frozenset({Op.WITHIN_LAST_DAYS, Op.MORE_THAN_DAYS_AGO})
"""Operators whose answer changes with time alone."""


@dataclass(frozen=True)
class Leaf:
    """``{"property", "op", "value"}`` checked against the attribute's type. ``value`` is
    parsed: a typed value (eq, ne, gt, gte, lt, lte; a tuple for LIST), a tuple of them
    (in, not_in), a (low, high) pair (between), a string (contains, starts_with,
    ends_with, has), a tuple of strings (has_any, has_all), a number of days, or None."""

    path: str = field(compare=False)  # where it stood, for messages; not its meaning
    name: str
    kind: AttrType
    op: Operator
    value: Any = None


@dataclass(frozen=True)
class And:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Leaf | And | Or | Not


# Parsing


def referenced_names(raw: Any) -> set[str]:
    """The attribute names the leaves of a raw condition name (best effort: malformed
    parts are skipped here and rejected by :func:`parse`), to look their types up."""
    names: set[str] = set()
    stack = [(raw, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict) or depth > MAX_DEPTH:
            continue
        prop = node.get("property")
        if isinstance(prop, str):
            names.add(prop)
        for key in ("and", "or"):
            if isinstance(node.get(key), list):
                stack.extend((child, depth + 1) for child in node[key])
        if "not" in node:
            stack.append((node["not"], depth + 1))
    return names


def parse(raw: Any, types: Mapping[str, AttrType], limits: Limits, tz: tzinfo) -> Condition:
    """A raw ``where`` checked against the attribute ``types`` (at least those of
    :func:`referenced_names`); values read like input values of each type, DATETIME
    without an offset in ``tz``. Raises 55004 naming the first node at fault."""
    return _Parser(types, limits, tz).node(raw, "where", 1)


class _Parser:
    def __init__(self, types: Mapping[str, AttrType], limits: Limits, tz: tzinfo) -> None:
        self.types = types
        self.limits = limits
        self.tz = tz
        self.leaves = 0

    def node(self, raw: Any, path: str, depth: int) -> Condition:
        if not isinstance(raw, dict):
            raise _fault(path, "a condition must be a JSON object")
        if depth > MAX_DEPTH:
            raise _fault(path, f"conditions nest at most {MAX_DEPTH} levels")
        keys = set(raw)
        for branch in ("and", "or"):
            if branch in keys:
                if keys != {branch}:
                    raise _fault(path, f'"{branch}" takes no other key')
                items = raw[branch]
                if not isinstance(items, list) or not items:
                    raise _fault(path, f'"{branch}" must be a non-empty array of conditions')
                parsed = tuple(
                    self.node(item, f"{path}.{branch}[{i}]", depth + 1)
                    for i, item in enumerate(items)
                )
                return And(parsed) if branch == "and" else Or(parsed)
        if "not" in keys:
            if keys != {"not"}:
                raise _fault(path, '"not" takes no other key')
            return Not(self.node(raw["not"], f"{path}.not", depth + 1))
        return self.leaf(raw, path)

    def leaf(self, raw: dict[str, Any], path: str) -> Leaf:
        self.leaves += 1
        if self.leaves > MAX_LEAVES:
            raise _fault(path, f"a condition has at most {MAX_LEAVES} leaves")
        unknown = set(raw) - {"property", "op", "value"}
        if unknown or "property" not in raw or "op" not in raw:
            raise _fault(
                path, 'expected {"and"}, {"or"}, {"not"} or a leaf {"property", "op", "value"}'
            )
        name = raw["property"]
        if not isinstance(name, str):
            raise _fault(path, "property must be a string")
        try:
            check_name(name)
        except Rejected as reason:
            raise _fault(path, f"property: {reason.reason}") from None
        kind = self.types.get(name)
        if kind is None:
            raise _fault(path, f"attribute {name} is not defined")
        op = _OPS.get(raw["op"]) if isinstance(raw["op"], str) else None
        allowed = OPERATORS[kind]
        if op is None or op not in allowed:
            choices = ", ".join(allowed)
            raise _fault(path, f"{name} is {kind}: op must be one of {choices}")
        where = f"{path} ({name} {op})"
        if op in (Op.IS_SET, Op.NOT_SET):
            if "value" in raw:
                raise _fault(where, f"{op} takes no value")
            return Leaf(path, name, kind, op)
        if "value" not in raw:
            raise _fault(where, "value is missing")
        try:
            value = _VALUE_PARSERS[op](self, kind, raw["value"])
        except Rejected as reason:
            raise _fault(where, reason.reason) from None
        return Leaf(path, name, kind, op, value)

    def typed(self, kind: AttrType, raw: Any) -> Typed:
        return parse_value(kind, raw, self.limits, self.tz, list_scalar=True)

    def many(self, kind: AttrType, raw: Any) -> tuple[Typed, ...]:
        if not isinstance(raw, list) or not raw:
            raise Rejected("value must be a non-empty array")
        if len(raw) > MAX_VALUES:
            raise Rejected(f"value has more than {MAX_VALUES} elements")
        values: list[Typed] = []
        for i, item in enumerate(raw):
            try:
                values.append(self.typed(kind, item))
            except Rejected as reason:
                raise Rejected(f"value[{i}]: {reason.reason}") from None
        return tuple(values)

    def pair(self, kind: AttrType, raw: Any) -> tuple[Typed, Typed]:
        if not isinstance(raw, list) or len(raw) != 2:
            raise Rejected("value must be an array [low, high]")
        low, high = self.many(kind, raw)
        return low, high

    def text(self, kind: AttrType, raw: Any) -> str:
        return checked_text(raw, self.limits, "value")

    def elements(self, kind: AttrType, raw: Any) -> tuple[str, ...]:
        if isinstance(raw, list) and not raw:
            raise Rejected("value must be a non-empty array of strings")
        if isinstance(raw, list) and len(raw) > MAX_VALUES:
            raise Rejected(f"value has more than {MAX_VALUES} elements")
        limits = dataclasses.replace(self.limits, max_list_length=MAX_VALUES)
        return parse_list(raw, limits, allow_scalar=False)

    def days(self, kind: AttrType, raw: Any) -> int:
        if type(raw) is not int or not 1 <= raw <= MAX_DAYS:
            raise Rejected(f"value must be a whole number of days from 1 to {MAX_DAYS}")
        return raw


_OPS = {op.value: op for op in Operator}
_VALUE_PARSERS: dict[Operator, Callable[[_Parser, AttrType, Any], Any]] = {
    Op.EQ: _Parser.typed,
    Op.NE: _Parser.typed,
    Op.IN: _Parser.many,
    Op.NOT_IN: _Parser.many,
    Op.GT: _Parser.typed,
    Op.GTE: _Parser.typed,
    Op.LT: _Parser.typed,
    Op.LTE: _Parser.typed,
    Op.BETWEEN: _Parser.pair,
    Op.CONTAINS: _Parser.text,
    Op.STARTS_WITH: _Parser.text,
    Op.ENDS_WITH: _Parser.text,
    Op.HAS: _Parser.text,
    Op.HAS_ANY: _Parser.elements,
    Op.HAS_ALL: _Parser.elements,
    Op.WITHIN_LAST_DAYS: _Parser.days,
    Op.MORE_THAN_DAYS_AGO: _Parser.days,
}


def _fault(where: str, reason: str) -> InvalidParameters:
    return InvalidParameters(f"{where}: {reason}")


# What a condition needs


def leaves(cond: Condition) -> Iterator[Leaf]:
    """Every leaf, in document order."""
    if isinstance(cond, Leaf):
        yield cond
    elif isinstance(cond, Not):
        yield from leaves(cond.item)
    else:
        for item in cond.items:
            yield from leaves(item)


def attributes(cond: Condition) -> frozenset[str]:
    """The attributes a condition reads: a write changing none of them cannot change its
    answer for that user."""
    return frozenset(leaf.name for leaf in leaves(cond))


def is_relative(cond: Condition) -> bool:
    """Whether the answer can change with time alone (within_last_days, more_than_days_ago)."""
    return any(leaf.op in RELATIVE for leaf in leaves(cond))


# The reference semantics


def matches(cond: Condition, values: Mapping[str, Typed], now: datetime) -> bool:
    """Whether a user whose attribute values are ``values`` (typed, by name; absent
    attributes left out) matches ``cond`` at instant ``now``."""
    if isinstance(cond, Leaf):
        return _leaf(cond, values.get(cond.name), now)
    if isinstance(cond, Not):
        return not matches(cond.item, values, now)
    if isinstance(cond, And):
        return all(matches(item, values, now) for item in cond.items)
    return any(matches(item, values, now) for item in cond.items)


def _leaf(leaf: Leaf, current: Typed | None, now: datetime) -> bool:
    op, arg = leaf.op, leaf.value
    if op is Op.NOT_SET:
        return current is None
    if current is None:
        return False
    if op is Op.IS_SET:
        return True
    if op is Op.EQ:
        return _equal(current, arg)
    if op is Op.NE:
        return not _equal(current, arg)
    if op is Op.IN:
        return any(_equal(current, item) for item in arg)
    if op is Op.NOT_IN:
        return not any(_equal(current, item) for item in arg)
    if op is Op.WITHIN_LAST_DAYS:
        assert isinstance(current, datetime)
        return bool(now - arg * DAY <= current <= now)
    if op is Op.MORE_THAN_DAYS_AGO:
        assert isinstance(current, datetime)
        return bool(current < now - arg * DAY)
    return _COMPARE[op](current, arg)


def _equal(current: Typed, arg: Typed) -> bool:
    """LIST values are equal as sets (their order is the order elements were added)."""
    if isinstance(current, tuple):
        assert isinstance(arg, tuple)
        return set(current) == set(arg)
    return current == arg


_COMPARE: dict[Operator, Callable[[Any, Any], bool]] = {
    Op.GT: lambda v, a: v > a,
    Op.GTE: lambda v, a: v >= a,
    Op.LT: lambda v, a: v < a,
    Op.LTE: lambda v, a: v <= a,
    Op.BETWEEN: lambda v, a: a[0] <= v <= a[1],
    Op.CONTAINS: lambda v, a: a in v,
    Op.STARTS_WITH: lambda v, a: v.startswith(a),
    Op.ENDS_WITH: lambda v, a: v.endswith(a),
    Op.HAS: lambda v, a: a in v,
    Op.HAS_ANY: lambda v, a: not set(v).isdisjoint(a),
    Op.HAS_ALL: lambda v, a: set(a) <= set(v),
}


# Back to JSON


def to_wire(cond: Condition, tz: tzinfo = UTC) -> dict[str, Any]:
    """The condition as JSON, values in the form they are read back in (DATETIME in
    ``tz``, NUMBER exact); :func:`parse` of it gives the same condition."""
    if isinstance(cond, And):
        return {"and": [to_wire(item, tz) for item in cond.items]}
    if isinstance(cond, Or):
        return {"or": [to_wire(item, tz) for item in cond.items]}
    if isinstance(cond, Not):
        return {"not": to_wire(cond.item, tz)}
    leaf: dict[str, Any] = {"property": cond.name, "op": cond.op.value}
    if cond.value is None:
        return leaf
    kind, value = cond.kind, cond.value
    if cond.op in (Op.IN, Op.NOT_IN, Op.BETWEEN):
        leaf["value"] = [to_json(kind, item, tz) for item in value]
    elif cond.op in (Op.HAS_ANY, Op.HAS_ALL):
        leaf["value"] = list(value)
    elif isinstance(value, str | int) and not isinstance(value, bool | Decimal):
        leaf["value"] = value  # a string (contains, has, ...) or a number of days
    else:
        leaf["value"] = to_json(kind, value, tz)
    return leaf
