"""The five operations of ``POST /v1/user/property`` over typed values (docs/schema.md).

Pure functions: the reference semantics every backend is checked against. ``None`` is an
absent value; an operation returning ``None`` removes the value.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from userprops.schema import EXACT, INT64_MAX, INT64_MIN, AttrType, Rejected, Typed, check_number


class Op(enum.StrEnum):
    SET = "set"
    INCREASE = "increase"
    ADD = "add"
    REMOVE = "remove"
    DELETE = "delete"


# The attribute type an operation needs, where it needs one (``None``: any type).
REQUIRED_TYPE: dict[Op, AttrType | None] = {
    Op.SET: None,
    Op.INCREASE: AttrType.NUMBER,
    Op.ADD: AttrType.LIST,
    Op.REMOVE: AttrType.LIST,
    Op.DELETE: None,
}


def op_set(current: Typed | None, arg: Typed) -> Typed | None:
    """Overwrite the value, creating it if absent."""
    return arg


def op_increase(current: Typed | None, arg: Typed) -> Typed | None:
    """Add ``arg`` exactly; an absent value counts as 0. Raises ``Rejected`` when the
    result leaves NUMBER's bounds."""
    assert isinstance(arg, Decimal)
    base = current if isinstance(current, Decimal) else Decimal(0)
    return check_number(EXACT.add(base, arg))


def increase_integer_text(current: str | None, raw: Any) -> str | None:
    """:func:`op_increase` on stored text in int arithmetic, for the common case of an int64
    argument and an integral (or absent) stored value: the same stored text the general
    path gives, or None when that path must run."""
    if type(raw) is not int or not INT64_MIN <= raw <= INT64_MAX:
        return None
    if current is None:
        base = 0
    elif current.isascii() and current.lstrip("-").isdigit() and current.count("-") <= 1:
        base = int(current)
    else:
        return None
    total = base + raw
    if not INT64_MIN <= total <= INT64_MAX:
        raise Rejected("integer outside signed 64 bits")
    return str(total)


def op_add(current: Typed | None, arg: Typed) -> Typed | None:
    """Add elements as to a set: present ones are kept where they are, new ones appended."""
    assert isinstance(arg, tuple)
    existing = current if isinstance(current, tuple) else ()
    merged = dict.fromkeys(existing)
    merged.update(dict.fromkeys(arg))
    return tuple(merged)


def op_remove(current: Typed | None, arg: Typed) -> Typed | None:
    """Remove elements; absent ones are ignored. An emptied list is an absent value."""
    assert isinstance(arg, tuple)
    if not isinstance(current, tuple):
        return None
    drop = set(arg)
    kept = tuple(item for item in current if item not in drop)
    return kept or None


def op_delete(current: Typed | None, arg: Typed | None) -> Typed | None:
    """Remove the value; deleting an absent value changes nothing."""
    return None


APPLY: dict[Op, Callable[[Typed | None, Typed], Typed | None]] = {
    Op.SET: op_set,
    Op.INCREASE: op_increase,
    Op.ADD: op_add,
    Op.REMOVE: op_remove,
    Op.DELETE: op_delete,
}


def apply(op: Op, current: Typed | None, arg: Typed) -> Typed | None:
    """The value after applying ``op`` with ``arg`` to ``current``."""
    return APPLY[op](current, arg)


# Event time (docs/bulk.md): set and delete are ordered by it, the last writer wins;
# increase, add and remove commute, so they always apply.
LAST_WRITER_WINS = frozenset({Op.SET, Op.DELETE})


def is_stale(op: Op, stored_ts: int | None, at: int) -> bool:
    """Whether a write of ``op`` with timestamp ``at`` loses to a value stored with event
    time ``stored_ts`` (None: no value): a set or delete older than the value does, at an
    equal time it applies; increase, add and remove never do. (A write without a
    timestamp is the newest: never stale.)"""
    return op in LAST_WRITER_WINS and stored_ts is not None and stored_ts > at


def event_time(stored_ts: int | None, at: int) -> int:
    """The event time of a value after a write at ``at`` applied to it: the newer of the
    two, so a commuting write older than the value leaves its time where it was."""
    return at if stored_ts is None or at > stored_ts else stored_ts
