"""The asynchronous client: :class:`~userprops_client.Client`'s methods, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
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


class AsyncClient(BaseClient):
    """As :class:`~userprops_client.Client`, for asyncio (and any loop httpx runs on). Use
    it as an async context manager, or await :meth:`aclose`."""

    _http: httpx.AsyncClient

    def _open(self, **settings: Any) -> None:
        self._http = httpx.AsyncClient(**settings)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, call: Call[T], idempotency_key: str | None = None) -> T:
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
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.after_error(exc))
                continue
            delay = attempts.after_answer(response)
            if delay is None:
                return call.result(response)
            await asyncio.sleep(delay)

    # EngageLab's endpoints

    async def set(
        self,
        euid: int,
        properties: Mapping[str, object],
        *,
        timestamp: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """As :meth:`Client.set`."""
        return await self._run(
            calls.write_properties(euid, "set", properties, timestamp), idempotency_key
        )

    async def increase(
        self,
        euid: int,
        properties: Mapping[str, object],
        *,
        timestamp: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """As :meth:`Client.increase`."""
        call = calls.write_properties(euid, "increase", properties, timestamp)
        return await self._run(call, idempotency_key)

    async def add(
        self,
        euid: int,
        properties: Mapping[str, object],
        *,
        timestamp: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """As :meth:`Client.add`."""
        return await self._run(
            calls.write_properties(euid, "add", properties, timestamp), idempotency_key
        )

    async def remove(
        self,
        euid: int,
        properties: Mapping[str, object],
        *,
        timestamp: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """As :meth:`Client.remove`."""
        call = calls.write_properties(euid, "remove", properties, timestamp)
        return await self._run(call, idempotency_key)

    async def delete(
        self,
        euid: int,
        properties: Mapping[str, object],
        *,
        timestamp: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """As :meth:`Client.delete`."""
        call = calls.write_properties(euid, "delete", properties, timestamp)
        return await self._run(call, idempotency_key)

    async def register(
        self,
        identity_name: IdentityName,
        values: Iterable[str],
        *,
        idempotency_key: str | None = None,
    ) -> Registration:
        """As :meth:`Client.register`."""
        return await self._run(calls.register(identity_name, values), idempotency_key)

    async def set_contacts(
        self, euid: int, contacts: Mapping[str, str], *, idempotency_key: str | None = None
    ) -> WriteResult:
        """As :meth:`Client.set_contacts`."""
        return await self._run(calls.set_contacts(euid, contacts), idempotency_key)

    async def report_events(
        self,
        events: Iterable[Mapping[str, object]],
        app_key: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """As :meth:`Client.report_events`."""
        return await self._run(calls.report_events(events, app_key), idempotency_key)

    # userprops's extensions

    async def get(self, euid: int) -> dict[str, Any]:
        """As :meth:`Client.get`."""
        return await self._run(calls.read_properties(euid))

    async def get_contacts(self, euid: int) -> dict[str, str]:
        """As :meth:`Client.get_contacts`."""
        return await self._run(calls.read_contacts(euid))

    async def list_events(
        self,
        euid: int,
        *,
        since: int | None = None,
        until: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> EventPage:
        """As :meth:`Client.list_events`."""
        call = calls.list_events(euid, since=since, until=until, limit=limit, cursor=cursor)
        return await self._run(call)

    async def iter_events(
        self,
        euid: int,
        *,
        since: int | None = None,
        until: int | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Event]:
        """As :meth:`Client.iter_events`."""
        cursor: str | None = None
        while True:
            page = await self.list_events(
                euid, since=since, until=until, limit=page_size, cursor=cursor
            )
            for event in page.events:
                yield event
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def batch(
        self, updates: Iterable[Mapping[str, object]], *, idempotency_key: str | None = None
    ) -> list[BatchResult]:
        """As :meth:`Client.batch`."""
        return await self._run(calls.write_batch(updates), idempotency_key)

    async def lookup(self, identity_name: IdentityName, value: str) -> int | None:
        """As :meth:`Client.lookup`."""
        try:
            return await self._run(calls.lookup(identity_name, value))
        except UserNotFound:
            return None

    async def delete_user(self, euid: int, *, idempotency_key: str | None = None) -> None:
        """As :meth:`Client.delete_user`."""
        await self._run(calls.delete_user(euid), idempotency_key)

    async def history(
        self,
        euid: int,
        *,
        property: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> HistoryPage:
        """As :meth:`Client.history`."""
        call = calls.history(
            euid, prop=property, since=since, until=until, limit=limit, cursor=cursor
        )
        return await self._run(call)

    async def changes_page(
        self, after: int = 0, *, limit: int | None = None, wait: float = 0
    ) -> ChangePage:
        """As :meth:`Client.changes_page`."""
        return await self._run(calls.changes(after, limit=limit, wait=wait))

    async def changes(
        self, after: int = 0, *, limit: int | None = None, wait: float = 30
    ) -> AsyncIterator[Change]:
        """As :meth:`Client.changes`."""
        while True:
            page = await self.changes_page(after, limit=limit, wait=wait)
            for change in page.changes:
                yield change
            after = page.last_seq

    async def query_segment(
        self, where: Mapping[str, Any], *, limit: int | None = None, cursor: str | None = None
    ) -> SegmentPage:
        """As :meth:`Client.query_segment`."""
        return await self._run(calls.query_segment(where, limit=limit, cursor=cursor))

    async def save_segment(self, name: str, where: Mapping[str, Any]) -> SavedSegment:
        """As :meth:`Client.save_segment`."""
        return await self._run(calls.save_segment(name, where))

    async def segment_members(
        self, name: str, *, limit: int | None = None, cursor: str | None = None
    ) -> SegmentPage:
        """As :meth:`Client.segment_members`."""
        return await self._run(calls.segment_members(name, limit=limit, cursor=cursor))

    async def iter_segment_members(self, name: str, *, page_size: int = 1000) -> AsyncIterator[int]:
        """As :meth:`Client.iter_segment_members`."""
        cursor = None
        while True:
            page = await self.segment_members(name, limit=page_size, cursor=cursor)
            for euid in page.euids:
                yield euid
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def user_segments(self, euid: int) -> list[str]:
        """As :meth:`Client.user_segments`."""
        return await self._run(calls.user_segments(euid))
