"""The history of changes and the change feed (docs/history-and-webhooks.md).

A change is recorded by the write that made it, in the same transaction
(:mod:`userprops.properties`); this module reads them back: one user's history, newest
first, paged by an opaque cursor, and a project's feed, oldest first, paged by ``after``.
:class:`Feed` holds long polls of the feed until their project's next commit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from userprops.errors import InvalidParameters, RateLimited, UserNotFound
from userprops.schema import read_back
from userprops.storage.base import Storage, StoredChange

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
FEED_DEFAULT_LIMIT = 100
FEED_MAX_LIMIT = 1000
MAX_WAIT = 30.0
MAX_LONG_POLLS = 16
"""Long polls (``wait`` > 0) one data source may hold open at once, in one process."""
CHANGE_OPS = (
    "set",
    "increase",
    "add",
    "remove",
    "delete",
    "segment.entered",
    "segment.left",
    "user.deleted",
)
"""Every ``op`` a change can have: the five writes, segment membership, erasure."""
_CURSOR = re.compile(r"h([0-9]{1,19})")
log = logging.getLogger("userprops.history")


@dataclass(frozen=True)
class HistoryQuery:
    """``GET /v1/user/history``: one user's changes, of ``prop`` only where given, with
    ``since <= at < until`` (epoch ms) where given, after the cursor position ``before``
    (a seq) where given."""

    euid: int
    prop: str | None = None
    since: int | None = None
    until: int | None = None
    limit: int = DEFAULT_LIMIT
    before: int | None = None


@dataclass(frozen=True)
class FeedQuery:
    """``GET /v1/changes``: changes with a seq above ``after``, held up to ``wait``
    seconds when there are none yet."""

    after: int = 0
    limit: int = FEED_DEFAULT_LIMIT
    wait: float = 0.0


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"h{seq}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> int:
    """The seq a history cursor stands for; 55004 for anything we did not hand out."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    m = _CURSOR.fullmatch(text)
    if m is None:
        raise InvalidParameters("cursor is not one this server handed out")
    return int(m[1])


def render_change(change: StoredChange, tz: tzinfo) -> dict[str, Any]:
    """A change in its wire form: ``old`` and ``new`` as values are read back."""
    kind = change.type
    old = new = None
    if kind is not None:
        if change.old is not None:
            old = read_back(kind, change.old, tz)
        if change.new is not None:
            new = read_back(kind, change.new, tz)
    return {
        "seq": change.seq,
        "euid": change.euid,
        "property": change.property or None,  # none for user.deleted
        "op": change.op,
        "old": old,
        "new": new,
        "source": change.source,
        "at": change.at,
    }


def read_history(
    storage: Storage, project_id: int, tz: tzinfo, query: HistoryQuery
) -> dict[str, Any]:
    """One page: ``{"euid", "changes", "next_cursor"}``; 404 unless the user is in the
    project."""
    with storage.read() as tx:
        if not tx.has_user(project_id, query.euid):
            raise UserNotFound()
        rows = tx.list_history(
            project_id,
            query.euid,
            prop=query.prop,
            since=query.since,
            until=query.until,
            before=query.before,
            limit=query.limit + 1,
        )
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return {
        "euid": query.euid,
        "changes": [render_change(c, tz) for c in page],
        "next_cursor": encode_cursor(page[-1].seq) if more else None,
    }


def read_feed(
    storage: Storage, project_id: int, tz: tzinfo, after: int, limit: int
) -> dict[str, Any]:
    """One page of the feed: ``{"changes", "last_seq"}``."""
    with storage.read() as tx:
        rows = tx.list_changes(project_id, after, limit)
    return {
        "changes": [render_change(c, tz) for c in rows],
        "last_seq": rows[-1].seq if rows else after,
    }


class Commits:
    """Who hears that a project committed changes: the feed's long polls and the webhook
    deliverer. The engine announces its own commits, and on PostgreSQL the storage's
    LISTEN those of other processes (:meth:`Storage.watch_changes`). A listener is
    called in the announcing thread, so it must be quick and thread-safe."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[int], None]] = []

    def subscribe(self, listener: Callable[[int], None]) -> None:
        self._listeners.append(listener)

    def announce(self, project_id: int) -> None:
        for listener in self._listeners:
            listener(project_id)


class Feed:
    """Long polls of the change feed: a request finding no change registers as a waiter
    of its project and sleeps until :meth:`notify` says that project committed changes
    (the writer after each commit; on PostgreSQL also a LISTEN for other processes'
    commits), or its time is up. No waiting request reads the database while it waits;
    one check per ``poll_interval`` of the projects waited on (not of each waiter)
    catches commits nobody announced, such as those of a CLI beside the server."""

    def __init__(self, storage: Storage, *, poll_interval: float = 1.0) -> None:
        self._storage = storage
        self._poll_interval = poll_interval
        self._waiters: dict[int, set[asyncio.Future[None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: asyncio.Task[None] | None = None
        self._seen: dict[int, int] = {}  # project id -> last seq known to the poller
        self._held: dict[Hashable, int] = {}  # holder -> long polls it holds

    def notify(self, project_id: int) -> None:
        """Wake every waiter of the project (on the event loop of the waiters)."""
        for future in self._waiters.pop(project_id, ()):
            if not future.done():
                future.set_result(None)

    def notify_threadsafe(self, project_id: int) -> None:
        """:meth:`notify` from any thread; nothing when nobody waits for the project (a
        waiter registers before it reads, so it reads what was committed before this)."""
        loop = self._loop
        if loop is None or project_id not in self._waiters or loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:  # the engine, after its own commit: no wake-up through the loop
            self.notify(project_id)
        else:
            loop.call_soon_threadsafe(self.notify, project_id)

    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    async def changes(
        self,
        project_id: int,
        tz: tzinfo,
        query: FeedQuery,
        holder: Hashable = None,
    ) -> dict[str, Any]:
        """A page of the project's feed after ``query.after``; when it is empty, held up
        to ``query.wait`` seconds for the next commit of the project. A ``holder`` (the
        data source) holds at most :data:`MAX_LONG_POLLS` at once: :class:`RateLimited`
        beyond, rather than one more connection and one more read per commit."""
        if query.wait <= 0:
            return await self._changes(project_id, tz, query)
        held = self._held.get(holder, 0)
        if held >= MAX_LONG_POLLS:
            raise RateLimited(1, f"{MAX_LONG_POLLS} long polls of this data source are open")
        self._held[holder] = held + 1
        try:
            return await self._changes(project_id, tz, query)
        finally:
            if self._held[holder] == 1:
                del self._held[holder]
            else:
                self._held[holder] -= 1

    async def _changes(self, project_id: int, tz: tzinfo, query: FeedQuery) -> dict[str, Any]:

        def page() -> dict[str, Any]:
            return read_feed(self._storage, project_id, tz, query.after, query.limit)

        loop = asyncio.get_running_loop()
        self._loop = loop
        deadline = loop.time() + query.wait
        while True:
            future: asyncio.Future[None] = loop.create_future()
            if query.wait > 0:  # registered before reading: a commit meanwhile wakes us
                self._waiters.setdefault(project_id, set()).add(future)
                self._start_poller(loop)
            try:
                found = await asyncio.to_thread(page)
                remaining = deadline - loop.time()
                if found["changes"] or remaining <= 0:
                    return found
                try:
                    await asyncio.wait_for(future, remaining)
                except TimeoutError:
                    return found
            finally:
                waiters = self._waiters.get(project_id)
                if waiters is not None:
                    waiters.discard(future)
                    if not waiters:
                        del self._waiters[project_id]

    def _start_poller(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._poller is None or self._poller.done():
            self._poller = loop.create_task(self._poll())

    async def _poll(self) -> None:
        while self._waiters:
            await asyncio.sleep(self._poll_interval)
            projects = list(self._waiters)
            try:
                heads = await asyncio.to_thread(self._heads, projects)
            except Exception:  # the database is away: the waiters time out as usual
                log.debug("feed poll failed", exc_info=True)
                continue
            for pid, seq in heads.items():
                if seq != self._seen.get(pid):
                    self._seen[pid] = seq
                    self.notify(pid)

    def _heads(self, projects: list[int]) -> dict[int, int]:
        with self._storage.read() as tx:
            return {pid: tx.last_seq(pid) for pid in projects}
