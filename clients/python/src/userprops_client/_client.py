"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from userprops_client import _calls as calls
from userprops_client._base import BaseClient
from userprops_client._calls import Call, IdentityName
from userprops_client._errors import UserNotFound
from userprops_client._results import (
    BatchResult,
    Change,
    ChangePage,
    Event,
    EventPage,
    HistoryPage,
    Registration,
    SavedSegment,
    SegmentPage,
    WriteResult,
)

T = TypeVar("T")


class Client(BaseClient):
    """A connection pool to one userprops (or EngageLab MA) endpoint, with one data
    source's credentials.

    ``timeout`` applies to each attempt; ``retries`` is the number of retries after the
    first attempt, or a :class:`RetryPolicy`. Every POST carries a random
    ``Idempotency-Key``, the same on each of its attempts, so a retried write applies
    once; ``idempotency_keys=False`` stops sending them (and so retries a POST only when it
    surely was not sent). Use it as a context manager, or call :meth:`close`.
    """

    _http: httpx.Client

    def _open(self, **settings: Any) -> None:
        self._http = httpx.Client(**settings)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, call: Call[T], idempotency_key: str | None = None) -> T:
        headers, attempts = self._begin(call, idempotency_key)
        request = self._http.build_request(
            call.method,
            call.path,
            params=call.params,
            content=call.body,
            headers=headers,
            timeout=self._timeout(call, self._http.timeout),
        )
        while True:
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                time.sleep(attempts.after_error(exc))
                continue
            delay = attempts.after_answer(response)
            if delay is None:
                return call.result(response)
            time.sleep(delay)

    # EngageLab's endpoints

    def set(
        self,
        euid: int,
        properties: Mapping[str, object],
        *,
        timestamp: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Overwrite the user's attributes, creating them if absent. With ``timestamp``
        (epoch ms the facts became true), a property whose stored value is newer is not
        applied: it is listed in ``errors`` with code 55106 (:class:`StaleProperty`)."""
        return self._run(
            calls.write_properties(euid, "set", properties, timestamp), idempotency_key
        )

    def increase(
        self,
        euid: int,
        properties: Mapping[str, object],
        *,
        timestamp: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Add numbers to NUMBER attributes (absent counts as 0; negative decreases)."""
        return self._run(
            calls.write_properties(euid, "increase", properties, timestamp), idempotency_key
        )

    def add(
        self,
        euid: int,
        properties: Mapping[str, object],
        *,
        timestamp: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Add strings to LIST attributes, as to a set."""
        return self._run(
            calls.write_properties(euid, "add", properties, timestamp), idempotency_key
        )

    def remove(
        self,
        euid: int,
        properties: Mapping[str, object],
        *,
        timestamp: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Remove strings from LIST attributes; absent ones are ignored."""
        return self._run(
            calls.write_properties(euid, "remove", properties, timestamp), idempotency_key
        )

    def delete(
        self,
        euid: int,
        properties: Mapping[str, object],
        *,
        timestamp: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Remove the named attributes' values (the values given are ignored); with
        ``timestamp``, not those whose stored value is newer (55106, as :meth:`set`)."""
        return self._run(
            calls.write_properties(euid, "delete", properties, timestamp), idempotency_key
        )

    def register(
        self,
        identity_name: IdentityName,
        values: Iterable[str],
        *,
        idempotency_key: str | None = None,
    ) -> Registration:
        """The EUID of each identity value, creating users for unknown ones."""
        return self._run(calls.register(identity_name, values), idempotency_key)

    def set_contacts(
        self, euid: int, contacts: Mapping[str, str], *, idempotency_key: str | None = None
    ) -> WriteResult:
        """Set (or, with ``""``, clear) the named contacts; others are left as they are."""
        return self._run(calls.set_contacts(euid, contacts), idempotency_key)

    def report_events(
        self,
        events: Iterable[Mapping[str, object]],
        app_key: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Store events (``{"euid", "event_name", "itime", "random_id"?, "properties"?}``)."""
        return self._run(calls.report_events(events, app_key), idempotency_key)

    # userprops's extensions

    def get(self, euid: int) -> dict[str, Any]:
        """Every attribute value of the user (decimals as ``Decimal``)."""
        return self._run(calls.read_properties(euid))

    def get_contacts(self, euid: int) -> dict[str, str]:
        """The user's contacts by name; unset ones are left out."""
        return self._run(calls.read_contacts(euid))

    def list_events(
        self,
        euid: int,
        *,
        since: int | None = None,
        until: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> EventPage:
        """One page of the user's events, newest first; ``since`` (inclusive) and ``until``
        (exclusive) in epoch milliseconds."""
        return self._run(
            calls.list_events(euid, since=since, until=until, limit=limit, cursor=cursor)
        )

    def iter_events(
        self,
        euid: int,
        *,
        since: int | None = None,
        until: int | None = None,
        page_size: int | None = None,
    ) -> Iterator[Event]:
        """Every event of the user, newest first, fetching pages as it goes."""
        cursor: str | None = None
        while True:
            page = self.list_events(euid, since=since, until=until, limit=page_size, cursor=cursor)
            yield from page.events
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def batch(
        self, updates: Iterable[Mapping[str, object]], *, idempotency_key: str | None = None
    ) -> list[BatchResult]:
        """Up to 1,000 updates (``{"euid", "type", "properties"}``) in one request, each
        applied as its own; one result per update, in order, never raised."""
        return self._run(calls.write_batch(updates), idempotency_key)

    def lookup(self, identity_name: IdentityName, value: str) -> int | None:
        """The EUID of the user holding an identity value, or None; nothing is created."""
        try:
            return self._run(calls.lookup(identity_name, value))
        except UserNotFound:
            return None

    def delete_user(self, euid: int, *, idempotency_key: str | None = None) -> None:
        """Erase a user: attributes, identities, contacts, events, values in history.
        Raises :class:`UserNotFound` when there is no such user."""
        self._run(calls.delete_user(euid), idempotency_key)

    def history(
        self,
        euid: int,
        *,
        property: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> HistoryPage:
        """One page of the user's changes, newest first."""
        call = calls.history(
            euid, prop=property, since=since, until=until, limit=limit, cursor=cursor
        )
        return self._run(call)

    def changes_page(
        self, after: int = 0, *, limit: int | None = None, wait: float = 0
    ) -> ChangePage:
        """One page of the project's change feed after ``after``, oldest first; with
        ``wait`` (up to 30 s) an empty page is held until the next change."""
        return self._run(calls.changes(after, limit=limit, wait=wait))

    def changes(
        self, after: int = 0, *, limit: int | None = None, wait: float = 30
    ) -> Iterator[Change]:
        """Every change after ``after``, in seq order, then each new one as it is committed
        (long polls of ``wait`` seconds): an endless iterator. Keep the last ``seq`` you
        handled to resume from it."""
        while True:
            page = self.changes_page(after, limit=limit, wait=wait)
            yield from page.changes
            after = page.last_seq

    def query_segment(
        self, where: Mapping[str, Any], *, limit: int | None = None, cursor: str | None = None
    ) -> SegmentPage:
        """The users matching a condition (docs/segments.md): the count and a page of
        EUIDs (``limit`` 0 to 1000; 0 for the count alone); raises
        :class:`InvalidParameters` naming a bad leaf."""
        return self._run(calls.query_segment(where, limit=limit, cursor=cursor))

    def save_segment(self, name: str, where: Mapping[str, Any]) -> SavedSegment:
        """Create or replace a saved segment; its membership is kept on every write."""
        return self._run(calls.save_segment(name, where))

    def segment_members(
        self, name: str, *, limit: int | None = None, cursor: str | None = None
    ) -> SegmentPage:
        """A page of a saved segment's members."""
        return self._run(calls.segment_members(name, limit=limit, cursor=cursor))

    def iter_segment_members(self, name: str, *, page_size: int = 1000) -> Iterator[int]:
        """Every member of a saved segment, page by page, EUIDs ascending."""
        cursor = None
        while True:
            page = self.segment_members(name, limit=page_size, cursor=cursor)
            yield from page.euids
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def user_segments(self, euid: int) -> list[str]:
        """The names of the saved segments a user is in."""
        return self._run(calls.user_segments(euid))
