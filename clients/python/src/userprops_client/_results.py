"""What the client's methods return. Partial success is a result, never an exception: the
accepted items were applied, and the rejected ones are listed on the result."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ItemError:
    """One rejected item of a request, as the server's ``errors`` lists it.

    ``property`` names a user attribute (or an event's property), ``contact`` a contact,
    ``index`` the position of an event or identity value in the request. Fields the item
    does not have are None; ``raw`` is the item as sent by the server.
    """

    code: int
    message: str
    property: str | None = None
    contact: str | None = None
    index: int | None = None
    identity_value: Any = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, item: Any) -> ItemError:
        if not isinstance(item, Mapping):
            return cls(code=0, message=str(item), raw={"item": item})
        return cls(
            code=int(item.get("code", 0)),
            message=str(item.get("message", "")),
            property=item.get("property"),
            contact=item.get("contact"),
            index=item.get("index"),
            identity_value=item.get("identity_value"),
            raw=item,
        )


def item_errors(items: Any) -> tuple[ItemError, ...]:
    """The ``errors`` of an envelope (absent, null or a list)."""
    if not isinstance(items, list):
        return ()
    return tuple(ItemError.from_wire(item) for item in items)


@dataclass(frozen=True)
class WriteResult:
    """The answer to a write that the server accepted (``code`` 0).

    ``ok`` is True when every item was applied; otherwise ``errors`` lists the rejected
    ones (the others were applied) and ``message`` says how many.
    """

    message: str = "success"
    errors: tuple[ItemError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


class Registration(dict[str, int]):
    """The EUID of every identity value that resolved, by value; ``errors`` lists the
    values the server rejected (empty, too long...), which have no entry."""

    def __init__(self, euids: Iterable[tuple[str, int]], errors: tuple[ItemError, ...] = ()):
        super().__init__(euids)
        self.errors = errors

    @property
    def ok(self) -> bool:
        return not self.errors

    def __repr__(self) -> str:
        return f"Registration({dict(self)!r}, errors={self.errors!r})"


@dataclass(frozen=True)
class Event:
    """An event read back (``GET /v1/event/list``); ``itime`` in epoch milliseconds."""

    event_name: str
    itime: int
    random_id: str | None
    app_key: str | None
    properties: dict[str, Any]


@dataclass(frozen=True)
class EventPage:
    """One page of a user's events, newest first; ``next_cursor`` is None on the last."""

    euid: int
    events: list[Event]
    next_cursor: str | None


@dataclass(frozen=True)
class Change:
    """A change of a stored value (history and feed): ``old``/``new`` in read-back form
    (None for absent), ``property`` None for ``user.deleted``, ``at`` epoch milliseconds."""

    seq: int
    euid: int
    property: str | None
    op: str
    old: Any
    new: Any
    source: str
    at: int

    @classmethod
    def from_wire(cls, item: Mapping[str, Any]) -> Change:
        return cls(
            seq=item["seq"],
            euid=item["euid"],
            property=item.get("property"),
            op=item["op"],
            old=item.get("old"),
            new=item.get("new"),
            source=item["source"],
            at=item["at"],
        )


@dataclass(frozen=True)
class HistoryPage:
    """One page of a user's changes, newest first; ``next_cursor`` is None on the last."""

    euid: int
    changes: list[Change]
    next_cursor: str | None


@dataclass(frozen=True)
class ChangePage:
    """One page of the feed, oldest first; pass ``last_seq`` as the next ``after``."""

    changes: list[Change]
    last_seq: int


@dataclass(frozen=True)
class BatchResult:
    """One update's answer in a batch: the code it would have got alone (0 when applied,
    with ``errors`` listing rejected properties on partial success)."""

    index: int
    code: int
    message: str
    errors: tuple[ItemError, ...] = ()

    @property
    def ok(self) -> bool:
        """Applied in full."""
        return self.code == 0 and not self.errors


@dataclass(frozen=True)
class SegmentPage:
    """One page of the users matching a condition or in a saved segment, EUIDs ascending;
    ``count`` is every match; ``next_cursor`` is None on the last page. ``complete`` is
    False while a saved segment's membership is still being built (always True for a
    query)."""

    count: int
    euids: list[int]
    next_cursor: str | None
    complete: bool = True


@dataclass(frozen=True)
class SavedSegment:
    """What saving a segment did: ``created`` False when it replaced a condition."""

    name: str
    created: bool
    count: int
