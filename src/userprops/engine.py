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

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from userprops.auth import Principal
from userprops.config import Limits
from userprops.contacts import ContactBook, ContactRequest
from userprops.definitions import TypeCache
from userprops.errors import (
    EmptyProperties,
    ErrorItem,
    InvalidParameters,
    InvalidProperties,
    UserNotFound,
)
from userprops.eventlist import ListQuery
from userprops.events import EventLog, ReportRequest
from userprops.properties import PropertyJob, PropertyRequest
from userprops.reader import Reader
from userprops.schema import Rejected, checked_text, read_back
from userprops.storage.base import StoredValue, Transaction
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
    def __init__(self, writer: Writer, reader: Reader, limits: Limits) -> None:
        self.writer = writer
        self._reader = reader
        self._limits = limits
        self.attribute_types = TypeCache()
        self._contacts = ContactBook(writer)
        self._events = EventLog(writer, limits)

    # Attributes

    async def set_properties(self, who: Principal, request: PropertyRequest) -> list[ErrorItem]:
        """Apply a request; return the rejected properties (empty on full success).

        Raises :class:`UserNotFound`, or 55102/55103 when every property is rejected.
        """
        outcome = await self.writer.submit(self.property_job(who, request))
        self.attribute_types.learn(who.project_id, outcome.learned)
        errors = outcome.errors
        if len(errors) == len(request.properties):
            empty = all(e.code == EmptyProperties.code for e in errors)
            raise (EmptyProperties if empty else InvalidProperties)(errors=errors)
        return errors

    def property_job(self, who: Principal, request: PropertyRequest) -> PropertyJob:
        known = self.attribute_types.known(who.project_id)
        return PropertyJob(who, request, self._limits, known)

    async def get_properties(self, who: Principal, euid: int) -> dict[str, Any]:
        """``{"euid", "properties"}``; 404 unless the user is in the caller's project."""
        stored = await self._reader.read_user(who.project_id, euid)
        if stored is None:
            raise UserNotFound()
        return {"euid": euid, "properties": render(stored, who.tz)}

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
        name = request.identity_name

        def job(tx: Transaction) -> dict[str, int]:
            resolved: dict[str, int] = {}
            for value in dict.fromkeys(values):
                euid = tx.find_identity(who.project_id, name, value)
                if euid is None:
                    euid = tx.bind_identity(
                        who.project_id, name, value, tx.create_user(who.project_id)
                    )
                resolved[value] = euid
            return resolved

        resolved = await self.writer.submit(job)
        data = [{"identity_value": v, "euid": resolved[v]} for v in values]
        return RegisterOutcome(data, errors)

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
