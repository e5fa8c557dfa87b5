"""The engine: the core every front end calls for users' data.

Each method takes who is calling (a :class:`~userprops.auth.Principal`, which fixes the
project) and a parsed request (:mod:`userprops.http.wire` parses the wire form), and
returns the answer's data or raises a :class:`~userprops.errors.UserpropsError`. Writes
are jobs of the group-commit :class:`~userprops.writer.Writer` (one transaction per batch,
answered after the commit); reads of attributes go through the batched
:class:`~userprops.reader.Reader`. The domain rules live beside it: property writes in
:mod:`userprops.properties`, contacts in :mod:`userprops.contacts`, events in
:mod:`userprops.events`; administration (projects, data sources, schema) in
:mod:`userprops.admin`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from userprops import queries, segments, users
from userprops.auth import Principal
from userprops.config import Limits
from userprops.contacts import ContactBook, ContactRequest
from userprops.definitions import TypeCache
from userprops.errors import (
    ErrorItem,
    InvalidParameters,
    UserNotFound,
)
from userprops.eventlist import ListQuery
from userprops.events import EventLog, ReportRequest
from userprops.history import Commits, Feed, FeedQuery, HistoryQuery, read_history
from userprops.properties import (
    BatchItem,
    BatchJob,
    BatchRequest,
    PropertyJob,
    PropertyRequest,
    answer,
)
from userprops.queries import MembersQuery, SegmentQuery
from userprops.reader import Reader
from userprops.schema import AttrType, Rejected, checked_text, read_back
from userprops.segments import SegmentCache, SegmentRequest
from userprops.storage.base import StoredValue, Transaction
from userprops.users import LookupQuery
from userprops.writer import Writer


@dataclass(frozen=True)
class RegisterRequest:
    identity_name: str
    identity_values: list[Any]


@dataclass
class RegisterOutcome:
    data: list[dict[str, Any]]
    errors: list[ErrorItem]


class Engine:
    """``history`` off records no change (and then the feed stays empty): for measuring
    what recording costs (docs/performance.md)."""

    def __init__(
        self, writer: Writer, reader: Reader, limits: Limits, *, history: bool = True
    ) -> None:
        self.writer = writer
        self._reader = reader
        self._limits = limits
        self._history = history
        self.feed = Feed(writer.storage)
        self.commits = Commits()
        self.commits.subscribe(self.feed.notify_threadsafe)
        self.attribute_types = TypeCache()
        self.segments = SegmentCache()
        self._contacts = ContactBook(writer)
        self._events = EventLog(writer, limits)

    # Attributes

    async def set_properties(self, who: Principal, request: PropertyRequest) -> list[ErrorItem]:
        """Apply a request; return the rejected properties (empty on full success).

        Raises :class:`UserNotFound`, or 55102/55103 when every property is rejected.
        """
        outcome = await self.writer.submit(self.property_job(who, request))
        self._committed(who, outcome.learned, outcome.changes)
        return answer(request, outcome)

    async def set_properties_batch(self, who: Principal, request: BatchRequest) -> list[BatchItem]:
        """Apply each update of a batch as its own request, all in one group; one answer
        per update, in order, with the code it would have got alone."""
        known = self.attribute_types.known(who.project_id)
        job = BatchJob(who, request, self._limits, known, self._history, self.segments)
        outcome = await self.writer.submit(job)
        self._committed(who, outcome.learned, outcome.changes)
        return outcome.items

    def _committed(self, who: Principal, learned: dict[str, AttrType], changes: int) -> None:
        """After a commit: cache the attribute types learned, wake the feed's waiters."""
        self.attribute_types.learn(who.project_id, learned)
        if changes:
            self.commits.announce(who.project_id)

    def property_job(self, who: Principal, request: PropertyRequest) -> PropertyJob:
        known = self.attribute_types.known(who.project_id)
        return PropertyJob(who, request, self._limits, known, self._history, self.segments)

    async def get_properties(self, who: Principal, euid: int) -> dict[str, Any]:
        """``{"euid", "properties"}``; 404 unless the user is in the caller's project."""
        stored = await self._reader.read_user(who.project_id, euid)
        if stored is None:
            raise UserNotFound()
        return {"euid": euid, "properties": render(stored, who.tz)}

    async def history(self, who: Principal, query: HistoryQuery) -> dict[str, Any]:
        """A page of a user's changes, newest first; 404 unless the user is the caller's."""
        storage = self.writer.storage
        return await asyncio.to_thread(read_history, storage, who.project_id, who.tz, query)

    async def changes(self, who: Principal, query: FeedQuery) -> dict[str, Any]:
        """A page of the project's change feed, held up to ``query.wait`` when empty."""
        return await self.feed.changes(who.project_id, who.tz, query, who.datasource_id)

    # Identities

    async def register(self, who: Principal, request: RegisterRequest) -> RegisterOutcome:
        """Get or create one user per identity value. Bad values are reported in
        ``errors`` by index; when every value is bad, raises 55004 with them."""
        errors: list[ErrorItem] = []
        values: list[str] = []
        for i, value in enumerate(request.identity_values):
            try:
                values.append(checked_text(value, self._limits, "identity value"))
            except Rejected as reason:
                errors.append(
                    ErrorItem(
                        index=i,
                        identity_value=value,
                        code=InvalidParameters.code,
                        message=reason.reason,
                    )
                )
        if not values:
            raise InvalidParameters("no valid identity value", errors=errors)

        def admit(tx: Transaction, created: list[int]) -> int:
            return segments.admit(
                tx, self.segments, who.project_id, created, who.source, record=self._history
            )

        unique = list(dict.fromkeys(values))
        job = users.RegisterJob(who.project_id, request.identity_name, unique, admit)
        resolved, entered = await self.writer.submit(job)
        self._committed(who, {}, entered)
        data = [{"identity_value": v, "euid": resolved[v]} for v in values]
        return RegisterOutcome(data, errors)

    async def lookup(self, who: Principal, query: LookupQuery) -> dict[str, Any]:
        """``{"euid"}`` of the caller's user holding an identity value; 40404 if none."""
        storage = self.writer.storage
        return await asyncio.to_thread(users.lookup, storage, who.project_id, query)

    async def delete_user(self, who: Principal, euid: int) -> None:
        """Erase a user of the caller's project (:func:`userprops.users.erase`)."""

        def job(tx: Transaction) -> None:
            users.erase(tx, who.project_id, euid, who.source)

        await self.writer.submit(job)
        self._committed(who, {}, 1)

    # Segments (docs/segments.md)

    async def query_segment(self, who: Principal, query: SegmentQuery) -> dict[str, Any]:
        """``{"count", "euids", "next_cursor"}`` of a condition over the caller's users."""
        storage, limits = self.writer.storage, self._limits
        return await asyncio.to_thread(
            queries.run_query, storage, who.project_id, who.tz, query, limits
        )

    async def save_segment(self, who: Principal, request: SegmentRequest) -> dict[str, Any]:
        """Create or replace a saved segment and build its membership (a span of users
        per writer job, writes going on between them); ``{"name", "created", "count"}``."""
        pid, name = who.project_id, request.name

        def define(tx: Transaction) -> bool:
            return segments.define(tx, pid, name, request.where, self._limits, who.tz)

        created = await self.writer.submit(define)
        await segments.build_async(self.writer, pid, name, who.source, self._history)
        self.feed.notify(pid)
        storage = self.writer.storage
        page = await asyncio.to_thread(queries.members, storage, pid, MembersQuery(name, 0))
        return {"name": name, "created": created, "count": page["count"]}

    async def segment_members(self, who: Principal, query: MembersQuery) -> dict[str, Any]:
        storage = self.writer.storage
        return await asyncio.to_thread(queries.members, storage, who.project_id, query)

    async def user_segments(self, who: Principal, euid: int) -> dict[str, Any]:
        storage = self.writer.storage
        return await asyncio.to_thread(queries.user_segments, storage, who.project_id, euid)

    # Contacts

    async def set_contacts(self, who: Principal, request: ContactRequest) -> list[ErrorItem]:
        """See :meth:`ContactBook.set_contacts`."""
        return await self._contacts.set_contacts(who, request)

    async def get_contacts(self, who: Principal, euid: int) -> dict[str, Any]:
        return await self._contacts.get_contacts(who, euid)

    # Events

    async def report_events(self, who: Principal, request: ReportRequest) -> list[ErrorItem]:
        """See :meth:`EventLog.report`."""
        return await self._events.report(who, request)

    async def list_events(self, who: Principal, query: ListQuery) -> dict[str, Any]:
        return await self._events.list(who, query)


def render(stored: dict[str, StoredValue], tz: tzinfo) -> dict[str, Any]:
    """Stored values in the JSON form they are read back in."""
    return {n: read_back(v.type, v.text, tz) for n, v in stored.items()}
