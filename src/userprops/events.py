"""Events (docs/contacts-events.md): ``POST /v1/event/report`` and ``GET /v1/event/list``.

A request carries 1 to 100 events; each is checked on its own and either stored or
reported in ``errors`` by its index. The checks that need no database (shape, names,
emptiness) run before the writer job; the job checks the users, resolves property types
and stores the accepted events, all in one savepoint, so a request is stored whole or,
on a storage failure, not at all.

The type of an event property is fixed per (project, event, property) by its first
accepted value (inferred as for user attributes in ``auto`` mode) or by ``userprops
event-property define``, and enforced afterwards. An unknown event name defines the event.
A ``random_id`` already stored in the project (or accepted earlier in the same request)
makes its event a duplicate: acknowledged, not validated again, not stored twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from userprops.auth import Principal
from userprops.config import Limits
from userprops.definitions import TypeCache, define_from_values
from userprops.errors import (
    CODE_TABLE,
    ErrorItem,
    InvalidParameters,
    UserNotFound,
)
from userprops.eventlist import ListQuery, read_events
from userprops.schema import (
    AttrType,
    Rejected,
    encode,
    parse_value,
)
from userprops.storage.base import NewEvent, Transaction
from userprops.writer import Writer

# Epoch milliseconds up to 9999-12-31T23:59:59.999Z.
MAX_ITIME = 253_402_300_799_999
_ERRORS_BY_CODE = {cls.code: cls for cls in CODE_TABLE}


@dataclass(frozen=True)
class ReportRequest:
    """A parsed ``POST /v1/event/report``: the events whose shape passed, and the
    rejections of the others (:func:`userprops.http.wire.parse_report_request`)."""

    app_key: str | None
    count: int
    candidates: list[Candidate]
    rejected: list[ErrorItem]


@dataclass(frozen=True)
class Candidate:
    """An event whose shape passed; its user and property types are checked in the job."""

    index: int
    euid: int
    event_name: str
    itime: int
    random_id: str | None
    properties: dict[str, Any]


def prop_key(event_name: str, name: str) -> str:
    """The cache key of an event property. A string, not a tuple, so an outcome can be
    stored as JSON with an Idempotency-Key; names never hold a dot."""
    return f"{event_name}.{name}"


@dataclass
class ReportOutcome:
    errors: list[ErrorItem]
    learned: dict[str, AttrType] = field(default_factory=dict)
    events: set[str] = field(default_factory=set)


class EventRejected(Exception):
    """One event rejected with a wire code; ``property`` names the property at fault."""

    def __init__(self, code: int, message: str, prop: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.property = prop

    def item(self, index: int) -> ErrorItem:
        return ErrorItem(index=index, property=self.property, code=self.code, message=self.message)


def encode_properties(values: dict[str, tuple[AttrType, str]]) -> str:
    """The stored JSON text of an event's properties: name -> [TYPE, stored text]."""
    return msgspec.json.encode({n: [k.value, t] for n, (k, t) in values.items()}).decode()


class EventLog:
    def __init__(self, writer: Writer, limits: Limits) -> None:
        self._writer = writer
        self._limits = limits
        self._types = TypeCache()  # keyed by prop_key(event, property)
        self._events: dict[int, set[str]] = {}

    async def report(self, who: Principal, request: ReportRequest) -> list[ErrorItem]:
        """Store the acceptable events; return the rejected ones by index.

        When every event is rejected, raises the code they all share (for example 55102
        or 40404), or 55004 when their codes differ, with the ``errors``.
        """
        errors = list(request.rejected)
        candidates = request.candidates
        if candidates:
            known = self._types.known(who.project_id)
            defined = frozenset(self._events.get(who.project_id, ()))

            def job(tx: Transaction) -> ReportOutcome:
                return _store(tx, who, request, candidates, known, defined, self._limits)

            outcome = await self._writer.submit(job)
            self._types.learn(who.project_id, outcome.learned)
            self._events.setdefault(who.project_id, set()).update(outcome.events)
            errors = sorted(errors + outcome.errors, key=lambda e: e.index or 0)
        if len(errors) == request.count:
            codes = {e.code for e in errors}
            shared = _ERRORS_BY_CODE.get(codes.pop()) if len(codes) == 1 else None
            raise (shared or InvalidParameters)("every event was rejected", errors=errors)
        return errors

    async def list(self, who: Principal, query: ListQuery) -> dict[str, Any]:
        return await asyncio.to_thread(
            read_events, self._writer.storage, who.project_id, who.tz, query
        )


def _store(
    tx: Transaction,
    who: Principal,
    request: ReportRequest,
    candidates: Sequence[Candidate],
    known: dict[str, AttrType],
    defined: frozenset[str],
    limits: Limits,
) -> ReportOutcome:
    pid = who.project_id
    outcome = ReportOutcome(errors=[])
    seen = tx.known_random_ids(pid, [c.random_id for c in candidates if c.random_id])
    users = tx.existing_users(pid, sorted({c.euid for c in candidates}))
    accepted: list[NewEvent] = []
    for c in candidates:
        if c.random_id is not None and c.random_id in seen:
            continue  # a duplicate: acknowledged, not validated again, not stored
        try:
            if c.euid not in users:
                raise EventRejected(UserNotFound.code, f"no user with euid {c.euid} here")
            values = _typed_properties(tx, who, c, known, outcome.learned, limits)
        except EventRejected as rejected:
            outcome.errors.append(rejected.item(c.index))
            continue
        if c.random_id is not None:
            seen.add(c.random_id)
        accepted.append(
            NewEvent(c.euid, c.event_name, c.itime, c.random_id, request.app_key, values)
        )
    if accepted:
        outcome.events = {e.event_name for e in accepted}
        tx.define_events(pid, sorted(outcome.events - defined))
        tx.insert_events(pid, accepted)
    return outcome


def _typed_properties(
    tx: Transaction,
    who: Principal,
    c: Candidate,
    known: dict[str, AttrType],
    learned: dict[str, AttrType],
    limits: Limits,
) -> str:
    """The stored properties of an event, defining the undefined ones from their values
    once every value of the event is accepted; :class:`EventRejected` otherwise."""
    types: dict[str, AttrType] = {}
    for name in c.properties:
        kind = known.get(prop_key(c.event_name, name)) or learned.get(prop_key(c.event_name, name))
        if kind is not None:
            types[name] = kind
    missing = [n for n in c.properties if n not in types]
    if missing:
        found = tx.event_property_types(who.project_id, c.event_name, missing)
        types.update(found)
        learned.update({prop_key(c.event_name, n): k for n, k in found.items()})

    def parse(kind: AttrType, raw: Any) -> str:
        return encode(kind, parse_value(kind, raw, limits, who.tz))

    def define(name: str, kind: AttrType) -> AttrType:
        return tx.define_event_property(who.project_id, c.event_name, name, kind)

    values: dict[str, tuple[AttrType, str]] = {}
    try:
        for name, raw in c.properties.items():
            kind = types.get(name)
            if kind is not None:
                try:
                    values[name] = (kind, parse(kind, raw))
                except Rejected as reason:
                    reason.name = name
                    raise
        new = {n: raw for n, raw in c.properties.items() if n not in types}
        for name, (kind, text) in define_from_values(new, parse, define).items():
            values[name] = (kind, text)
            learned[prop_key(c.event_name, name)] = kind
    except Rejected as reason:
        raise EventRejected(reason.code, reason.reason, reason.name) from None
    return encode_properties({n: values[n] for n in c.properties})
