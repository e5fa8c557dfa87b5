"""Reading events back: ``GET /v1/event/list`` and the CLI's ``event list``.

Newest first (``itime`` descending, then arrival), ``from <= itime < to`` in epoch
milliseconds, at most ``limit`` per page (default 50, at most 500) and no more than
:data:`PAGE_BYTES` of stored properties (one event always). A page that is not
the last carries ``next_cursor``, an opaque token for the next page; pages stay
consistent while events are added, because the cursor is a position in the order, not
an offset.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

import msgspec

from userprops.errors import InvalidParameters, UserNotFound
from userprops.schema import INT64_MAX, read_back
from userprops.storage.base import Storage, StoredEvent, Transaction

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# A page stops after this much stored property text (docs/contacts-events.md).
PAGE_BYTES = 4 * 1024 * 1024
_CHUNK = 32
_CURSOR = re.compile(r"([0-9]{1,16}):([0-9]{1,19})")


@dataclass(frozen=True)
class ListQuery:
    euid: int
    since: int | None = None
    until: int | None = None
    limit: int = DEFAULT_LIMIT
    before: tuple[int, int] | None = None


def encode_cursor(event: StoredEvent) -> str:
    return base64.urlsafe_b64encode(f"{event.itime}:{event.id}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[int, int]:
    """The (itime, id) position of a cursor; 55004 for anything we did not hand out."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    m = _CURSOR.fullmatch(text)
    if m is None or int(m[2]) > INT64_MAX:  # an id past int64 cannot be a stored one
        raise InvalidParameters("cursor is not one this server handed out")
    return int(m[1]), int(m[2])


def render_event(event: StoredEvent, tz: tzinfo) -> dict[str, Any]:
    """An event in its read-back form; property values as for user attributes."""
    stored = msgspec.json.decode(event.properties, type=dict[str, tuple[str, str]])
    properties = {}
    for name, (kind_text, text) in stored.items():
        properties[name] = read_back(kind_text, text, tz)
    return {
        "event_name": event.event_name,
        "itime": event.itime,
        "random_id": event.random_id,
        "app_key": event.app_key,
        "properties": properties,
    }


def read_events(storage: Storage, project_id: int, tz: tzinfo, query: ListQuery) -> dict[str, Any]:
    """One page: ``{"euid", "events", "next_cursor"}``; 404 unless the user is in the
    project."""
    with storage.read() as tx:
        if not tx.has_user(project_id, query.euid):
            raise UserNotFound()
        page, more = _page(tx, project_id, query)
    return {
        "euid": query.euid,
        "events": [render_event(e, tz) for e in page],
        "next_cursor": encode_cursor(page[-1]) if more else None,
    }


def _page(tx: Transaction, project_id: int, query: ListQuery) -> tuple[list[StoredEvent], bool]:
    """At most ``limit`` events, and no more after :data:`PAGE_BYTES` of their stored
    properties (one event always); whether more follow. Read :data:`_CHUNK` at a time, so
    large events are never all in memory at once: 500 events of 1 MiB each would have made
    one answer of 500 MiB."""
    page: list[StoredEvent] = []
    size = 0
    before = query.before
    while True:
        take = min(query.limit - len(page), _CHUNK)
        rows = tx.list_events(
            project_id,
            query.euid,
            since=query.since,
            until=query.until,
            before=before,
            limit=take + 1,
        )
        for i, row in enumerate(rows):
            if len(page) == query.limit or (page and size + len(row.properties) > PAGE_BYTES):
                return page, True
            if i == take:  # the row past this chunk: more follow, read the next chunk
                break
            page.append(row)
            size += len(row.properties)
        if len(rows) <= take:
            return page, False
        before = (page[-1].itime, page[-1].id)
