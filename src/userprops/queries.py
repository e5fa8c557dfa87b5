"""Segment reads (docs/segments.md): ``POST /v1/segment/query``, a saved segment's
members, the segments a user is in, and the segments of a project.

A query answers the number of matching users and a page of their EUIDs, ascending. The
count is computed with the first page (no cursor); the cursor carries it to the pages
that follow, so paging costs a page, not a count, each time. A cursor names its query
(a digest of the condition), so one cannot page another query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import tzinfo
from decimal import Decimal
from typing import Any

import msgspec

from userprops.conditions import to_wire
from userprops.config import Limits
from userprops.errors import InvalidParameters, UserNotFound
from userprops.segments import condition_json, load, now, parse_where
from userprops.storage.base import Storage, StoredSegment, Transaction

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_CURSOR = re.compile(r"([qm])([0-9]{1,19})\.([0-9]{1,19})\.([0-9a-f]{1,16})")
_CONDITION = msgspec.json.Decoder(float_hook=Decimal)


def decode_where(text: str) -> Any:
    """A condition written as JSON text (the command line's ``--where``, the console's
    builder), numbers exact; ValueError saying what is wrong with the JSON."""
    try:
        return _CONDITION.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


@dataclass(frozen=True)
class SegmentQuery:
    """``POST /v1/segment/query``: a raw ``where``, checked by the engine against the
    project's attribute types."""

    where: Any
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


@dataclass(frozen=True)
class MembersQuery:
    """``GET /v1/segment/members``."""

    name: str
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


def _encode(kind: str, after: int, count: int, tag: str) -> str:
    text = f"{kind}{after}.{count}.{tag}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(token: str, kind: str, tag: str) -> tuple[int, int]:
    """(after, count) of a cursor handed out for this query; 55004 otherwise."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    m = _CURSOR.fullmatch(text)
    if m is None or m[1] != kind:
        raise InvalidParameters("cursor is not one this server handed out")
    if m[4] != tag:
        raise InvalidParameters("cursor belongs to another query")
    return int(m[2]), int(m[3])


def _page(euids: list[int], limit: int, kind: str, count: int, tag: str) -> dict[str, Any]:
    page = euids[:limit]
    more = len(euids) > limit
    cursor = _encode(kind, page[-1], count, tag) if more and page else None
    return {"count": count, "euids": page, "next_cursor": cursor}


def run_query(
    storage: Storage, project_id: int, tz: tzinfo, query: SegmentQuery, limits: Limits
) -> dict[str, Any]:
    """``{"count", "euids", "next_cursor"}``; 55004 for a bad condition or cursor."""
    with storage.read() as tx:
        cond = parse_where(tx, project_id, query.where, limits, tz)
        tag = hashlib.sha256(condition_json(cond).encode()).hexdigest()[:16]
        moment = now()
        if query.cursor:
            after, count = _decode(query.cursor, "q", tag)
        else:
            after, count = 0, tx.count_matching(project_id, cond, moment)
        euids = []
        if query.limit:
            euids = tx.match_page(project_id, cond, moment, after, query.limit + 1)
    return _page(euids, query.limit, "q", count, tag)


def _segment(tx: Transaction, project_id: int, name: str) -> StoredSegment:
    stored = tx.get_segment(project_id, name)
    if stored is None:
        raise InvalidParameters(f"no segment named {name!r}")
    return stored


def members(storage: Storage, project_id: int, query: MembersQuery) -> dict[str, Any]:
    """``{"name", "count", "euids", "next_cursor", "complete"}``: a page of a saved
    segment's members, ascending; ``complete`` is false while its membership is built."""
    with storage.read() as tx:
        stored = _segment(tx, project_id, query.name)
        tag = f"{stored.id:x}"
        if query.cursor:
            after, count = _decode(query.cursor, "m", tag)
        else:
            after, count = 0, tx.count_members(project_id, stored.id)
        euids = (
            tx.list_members(project_id, stored.id, after, query.limit + 1) if query.limit else []
        )
    page = _page(euids, query.limit, "m", count, tag)
    return {"name": stored.name, **page, "complete": stored.built_to is None}


def user_segments(storage: Storage, project_id: int, euid: int) -> dict[str, Any]:
    """``{"euid", "segments"}``: the names of the saved segments the user is in; 404
    unless the user is in the project."""
    with storage.read() as tx:
        if not tx.has_user(project_id, euid):
            raise UserNotFound()
        return {"euid": euid, "segments": tx.user_segments(project_id, euid)}


def describe(tx: Transaction, stored: StoredSegment, tz: tzinfo) -> dict[str, Any]:
    """A saved segment as the command line shows it: its condition (DATETIME in the
    project's time zone), its member count and whether its build is complete."""
    return {
        "name": stored.name,
        "where": to_wire(load(tx, stored).cond, tz),
        "count": tx.count_members(stored.project_id, stored.id),
        "complete": stored.built_to is None,
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
    }


def show(storage: Storage, project_id: int, name: str, tz: tzinfo) -> dict[str, Any]:
    with storage.read() as tx:
        return describe(tx, _segment(tx, project_id, name), tz)


def list_all(storage: Storage, project_id: int, tz: tzinfo) -> list[dict[str, Any]]:
    with storage.read() as tx:
        return [describe(tx, s, tz) for s in tx.list_segments(project_id)]
