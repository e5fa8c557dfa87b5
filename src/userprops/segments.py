"""Saved segments (docs/segments.md): defining one and building its membership, keeping
membership on every write, and the sweep that checks conditions relative to now again.

Membership is stored (``segment_members``) and kept exact in the transaction of every
write: a group of property writes re-evaluates, for each user it changes, only the saved
segments whose attributes it changed, with the reference semantics
(:func:`userprops.conditions.matches`) on the user's values, read in the group's one
lock-and-read; a new user enters the segments that match a user without values. A user
entering or leaving is a change of op ``segment.entered`` / ``segment.left`` in the
history and the feed, in the same transaction.

A segment's membership is built a span of :data:`BUILD_SPAN` users at a time, each span
one transaction holding the project's segments (:meth:`Transaction.lock_segments`), so
that writes go on between spans; members are exact for EUIDs up to ``built_to``, and
writes keep membership only there (a span still to come reads those users' values
then). The first build of a new segment records no change (its members are a starting
point, not news); the build of a replaced condition, and each re-check of a condition
relative to now, record one change per user who enters or leaves.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from userprops.conditions import (
    DAY,
    RELATIVE,
    Condition,
    Leaf,
    Op,
    Or,
    attributes,
    is_relative,
    leaves,
    matches,
    parse,
    referenced_names as _referenced,
    to_wire,
)
from userprops.config import Limits
from userprops.errors import InvalidParameters
from userprops.schema import (
    DATETIME_MIN,
    INT64_MAX,
    AttrType,
    Rejected,
    Typed,
    check_name,
    decode,
)
from userprops.storage.base import (
    NewChange,
    StoredSegment,
    StoredValue,
    Transaction,
    UserKey,
)
from userprops.writer import Writer

BUILD_SPAN = 5000
"""Users evaluated per transaction when a segment is built or checked again."""
MAX_SEGMENTS = 100
"""Saved segments per project: each is evaluated by the writes that touch its attributes."""
ENTERED = "segment.entered"
LEFT = "segment.left"
SWEEP_SOURCE = "segment-sweep"
"""The ``source`` of changes found by the sweep (or a build it resumed)."""

log = logging.getLogger("userprops.segments")
T = TypeVar("T")
_STORED = Limits(max_string_length=1 << 30, max_list_length=1 << 30)  # checked when saved
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_ENCODER = msgspec.json.Encoder(decimal_format="number", order="sorted")


def now() -> datetime:
    """The instant conditions relative to now are evaluated at."""
    return datetime.now(UTC)


def _ms(at: datetime) -> int:
    """An instant as stored in ``checked_ms``: rounded down (an earlier check is safe)."""
    return math.floor(at.timestamp() * 1000)


def _instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


# Definitions


def parse_where(tx: Transaction, project_id: int, raw: Any, limits: Limits, tz: Any) -> Condition:
    """A raw ``where`` checked against the project's attribute types (55004 naming the
    leaf at fault)."""
    names = sorted(n for n in _referenced(raw) if _is_name(n))
    types = tx.attribute_types(project_id, names) if names else {}
    return parse(raw, types, limits, tz)


def _is_name(name: str) -> bool:
    try:
        check_name(name)
    except Rejected:
        return False
    return True


def condition_json(cond: Condition) -> str:
    """The stored form of a condition: its wire JSON in UTC, keys sorted."""
    return _ENCODER.encode(to_wire(cond)).decode()


def check_segment_name(name: Any) -> str:
    if not isinstance(name, str):
        raise InvalidParameters("name must be a string")
    try:
        check_name(name)
    except Rejected as reason:
        raise InvalidParameters(f"name: {reason.reason}") from None
    return name


@dataclass(frozen=True)
class SegmentRequest:
    """``POST /v1/segment``: a name and a raw ``where``."""

    name: str
    where: Any


@dataclass(frozen=True)
class Saved:
    """A saved segment as writes use it: its parsed condition and what it reads."""

    id: int
    name: str
    cond: Condition
    attributes: frozenset[str]
    built_to: int | None
    quiet: bool

    def built_for(self, euid: int) -> bool:
        """Whether the user's membership is kept (its span is built)."""
        return self.built_to is None or euid <= self.built_to


def load(tx: Transaction, stored: StoredSegment) -> Saved:
    """A stored segment with its condition parsed (types of attributes never change)."""
    raw = _DECODER.decode(stored.condition)
    names = sorted(_referenced(raw))
    cond = parse(raw, tx.attribute_types(stored.project_id, names), _STORED, UTC)
    return Saved(stored.id, stored.name, cond, attributes(cond), stored.built_to, stored.quiet)


class SegmentCache:
    """Each project's saved segments as last read, with the segments version they were
    read at; a writer checks the version in its own read and loads them again when it
    moved. Shared by the jobs of one process."""

    def __init__(self) -> None:
        self._projects: dict[int, tuple[int, tuple[Saved, ...]]] = {}

    def version(self, project_id: int) -> int | None:
        entry = self._projects.get(project_id)
        return None if entry is None else entry[0]

    def segments(self, project_id: int) -> tuple[Saved, ...]:
        entry = self._projects.get(project_id)
        return () if entry is None else entry[1]

    def load(self, tx: Transaction, project_id: int, version: int) -> tuple[Saved, ...]:
        if self.version(project_id) != version:
            saved = tuple(load(tx, s) for s in tx.list_segments(project_id))
            self._projects[project_id] = (version, saved)
        return self.segments(project_id)

    def current(self, tx: Transaction, project_id: int) -> tuple[Saved, ...]:
        """The project's segments as of ``tx``, taking the writers' side of its
        segments lock (:meth:`Transaction.segments_versions`)."""
        version = tx.segments_versions([project_id]).get(project_id, 0)
        return self.load(tx, project_id, version)


# Keeping membership on writes


def _change(pid: int, euid: int, name: str, entered: bool, source: str) -> NewChange:
    old, new = ("false", "true") if entered else ("true", "false")
    return NewChange(pid, euid, name, ENTERED if entered else LEFT, AttrType.BOOL, old, new, source)


class Membership:
    """Saved segments' membership kept by one group of property writes.

    :meth:`want` says which attributes each user's writes may change; :meth:`read` is
    then the group's lock-and-read, with the values and memberships the touched
    segments need; :meth:`after` re-evaluates a user's touched segments after one job and
    gives the changes to record; :meth:`write` stores the memberships that moved."""

    def __init__(self, cache: SegmentCache) -> None:
        self._cache = cache
        self._named: dict[UserKey, set[str]] = {}
        self._touched: dict[UserKey, list[Saved]] = {}
        self._held: set[tuple[int, int, int]] = set()
        self._now = now()
        self._state: dict[tuple[int, int, int], bool] = {}

    def want(self, key: UserKey, names: Iterable[str]) -> None:
        self._named.setdefault(key, set()).update(names)

    def _needs(
        self, projects: Collection[int]
    ) -> tuple[dict[UserKey, set[str]], set[tuple[int, int, int]]]:
        extra: dict[UserKey, set[str]] = {}
        members: set[tuple[int, int, int]] = set()
        for (pid, euid), names in self._named.items():
            if pid not in projects:
                continue
            touched = [
                s
                for s in self._cache.segments(pid)
                if s.built_for(euid) and not s.attributes.isdisjoint(names)
            ]
            self._touched[pid, euid] = touched
            for s in touched:
                extra.setdefault((pid, euid), set()).update(s.attributes)
                members.add((pid, euid, s.id))
        return extra, members

    def read(
        self, tx: Transaction, wanted: dict[UserKey, set[str]]
    ) -> dict[UserKey, dict[str, StoredValue]]:
        """The group's lock-and-read (:meth:`Transaction.lock_segment_values`); when a
        project's segments changed since they were cached, they are loaded again and
        what they need is read too (the users' locks are already held)."""
        projects = {pid for pid, _ in wanted}
        extra, members = self._needs(projects)
        for key, names in extra.items():
            wanted[key] |= names
        read = tx.lock_segment_values(wanted, projects, members)
        values, held = read.values, set(read.members)
        stale = {p for p in projects if self._cache.version(p) != read.versions.get(p, 0)}
        if stale:
            for pid in stale:
                self._cache.load(tx, pid, read.versions.get(pid, 0))
            extra, more = self._needs(stale)
            missing = {
                key: names - wanted[key] for key, names in extra.items() if names - wanted[key]
            }
            if missing or more - members:
                again = tx.lock_segment_values(missing, stale, more - members)
                for key, found in again.values.items():
                    values.setdefault(key, {}).update(found)
                held |= again.members
        self._held = held
        return values

    def after(
        self,
        pid: int,
        euid: int,
        changed: Collection[str],
        view: Mapping[str, StoredValue],
        source: str,
    ) -> list[NewChange]:
        """Re-evaluate the user's segments that read an attribute in ``changed``, on its
        values ``view`` after a job; the entered and left changes, by segment name."""
        if not changed:
            return []
        segments = [
            s for s in self._touched.get((pid, euid), ()) if not s.attributes.isdisjoint(changed)
        ]
        if not segments:
            return []
        values = _typed(view, {n for s in segments for n in s.attributes})
        changes: list[NewChange] = []
        for s in sorted(segments, key=lambda s: s.name):
            key = (pid, euid, s.id)
            was = self._state.get(key, key in self._held)
            now_in = matches(s.cond, values, self._now)
            if now_in != was:
                self._state[key] = now_in
                changes.append(_change(pid, euid, s.name, now_in, source))
        return changes

    def write(self, tx: Transaction) -> None:
        """Store the memberships that moved during the group."""
        entered: list[tuple[int, int, int]] = []
        left: list[tuple[int, int, int]] = []
        for (p, e, s), now_in in self._state.items():
            if now_in != ((p, e, s) in self._held):
                (entered if now_in else left).append((p, s, e))
        if entered or left:
            tx.write_members(entered, left)


def _typed(view: Mapping[str, StoredValue], names: Collection[str]) -> dict[str, Typed]:
    return {n: decode(view[n].type, view[n].text) for n in names if n in view}


def admit(
    tx: Transaction,
    cache: SegmentCache,
    project_id: int,
    euids: Collection[int],
    source: str,
    *,
    record: bool = True,
) -> int:
    """New users (no value yet) enter every built segment a user without values matches
    (``not_set``, ``not``): as any write, in the transaction that creates them. Returns
    how many changes it recorded."""
    if not euids:
        return 0
    moment = now()
    segments = [
        s
        for s in cache.current(tx, project_id)
        if s.built_to is None and matches(s.cond, {}, moment)
    ]
    if not segments:
        return 0
    tx.write_members([(project_id, s.id, e) for e in euids for s in segments], [])
    if not record:
        return 0
    changes = [_change(project_id, e, s.name, True, source) for e in euids for s in segments]
    tx.record_changes(changes)
    return len(changes)


# Defining and building


def define(tx: Transaction, project_id: int, name: str, raw: Any, limits: Limits, tz: Any) -> bool:
    """Create or replace a segment's definition (its build starts); True when new.
    55004 for a bad name or condition, or a project that has :data:`MAX_SEGMENTS`."""
    check_segment_name(name)
    tx.lock_segments(project_id)
    cond = parse_where(tx, project_id, raw, limits, tz)
    existing = tx.list_segments(project_id)
    if len(existing) >= MAX_SEGMENTS and all(s.name != name for s in existing):
        raise InvalidParameters(f"a project has at most {MAX_SEGMENTS} saved segments")
    _, created = tx.save_segment(project_id, name, condition_json(cond), _ms(now()))
    return created


def build_step(project_id: int, name: str, source: str, record: bool, tx: Transaction) -> bool:
    """Build the next span of a segment's membership: the next :data:`BUILD_SPAN` users
    evaluated, members added and removed, and (unless quiet) one change per user who
    entered or left. True when the build is complete (or there is nothing to build)."""
    tx.lock_segments(project_id)
    stored = tx.get_segment(project_id, name)
    if stored is None or stored.built_to is None:
        return True
    saved = load(tx, stored)
    low = stored.built_to
    high = tx.user_after(project_id, low, BUILD_SPAN)
    top = INT64_MAX if high is None else high
    matched = set(tx.match_span(project_id, saved.cond, now(), low, top))
    held = set(tx.members_between(project_id, saved.id, low, top))
    entered, left = matched - held, held - matched
    tx.write_members(
        [(project_id, saved.id, e) for e in sorted(entered)],
        [(project_id, saved.id, e) for e in sorted(left)],
    )
    if record and not saved.quiet and (entered or left):
        tx.record_changes(
            [_change(project_id, e, name, e in entered, source) for e in sorted(entered | left)]
        )
    tx.set_segment_built(saved.id, high)
    return high is None


def build(
    run: Callable[[Callable[[Transaction], bool]], bool],
    project_id: int,
    name: str,
    source: str,
    record: bool = True,
) -> None:
    """Run :func:`build_step` until the build is complete, each step through ``run`` (a
    transaction of its own)."""
    step = functools.partial(build_step, project_id, name, source, record)
    while not run(step):
        pass


async def build_async(
    writer: Writer,
    project_id: int,
    name: str,
    source: str,
    record: bool,
    stop: threading.Event | None = None,
) -> bool:
    """:func:`build` with each step a job of the group-commit writer, so writes go on
    between steps; False when stopped before the end."""
    step = functools.partial(build_step, project_id, name, source, record)
    while stop is None or not stop.is_set():
        if await writer.submit(step):
            return True
    return False


# The sweep


def _relative_segments(tx: Transaction) -> list[tuple[int, StoredSegment, Saved]]:
    found = []
    for project in tx.list_projects():
        for stored in tx.list_segments(project.id):
            saved = load(tx, stored)
            if saved.built_to is None and is_relative(saved.cond):
                found.append((project.id, stored, saved))
    return found


def _rebuild(project_id: int, segment_id: int, at_ms: int, tx: Transaction) -> None:
    tx.lock_segments(project_id)
    tx.rebuild_segment(segment_id, at_ms)


def _mark(segment_id: int, since_ms: int, at_ms: int, tx: Transaction) -> bool:
    return tx.mark_segment_checked(segment_id, since_ms, at_ms)


def window(cond: Condition, since: datetime, until: datetime) -> Condition:
    """Who may have entered or left ``cond`` between instants ``since`` and ``until``
    by time alone: a ``within_last_days N`` leaf (``now - N days <= v <= now``) changes
    its answer only for values between ``since - N`` and ``until - N`` (they grew too
    old) or between ``since`` and ``until`` (they were in the future); a
    ``more_than_days_ago N`` leaf (``v < now - N days``) only for values between
    ``since - N`` and ``until - N``. Every other leaf answers the same at both instants,
    so a user outside these ranges has the answer it had at ``since``."""
    spans: list[Condition] = []
    for leaf in leaves(cond):
        if leaf.op not in RELATIVE:
            continue
        ago = leaf.value * DAY
        ranges = [(since - ago, until - ago)]
        if leaf.op is Op.WITHIN_LAST_DAYS:
            ranges.append((since, until))
        for low, high in ranges:
            low = max(low, DATETIME_MIN)
            spans.append(Leaf("sweep", leaf.name, AttrType.DATETIME, Op.BETWEEN, (low, high)))
    return spans[0] if len(spans) == 1 else Or(tuple(spans))


def recheck_step(
    stored: StoredSegment,
    since: datetime,
    until: datetime,
    after: int,
    record: bool,
    tx: Transaction,
) -> int | None:
    """Check again, at instant ``until``, the next :data:`BUILD_SPAN` users above EUID
    ``after`` whom time alone may have moved in or out of the segment since ``since``
    (:func:`window`): members added and removed, one change each. The last EUID checked
    when there may be more; None when done (or when the segment changed meanwhile:
    replaced or building, the build sees to it)."""
    pid = stored.project_id
    tx.lock_segments(pid)
    current = tx.get_segment(pid, stored.name)
    if current is None or current.id != stored.id or current.condition != stored.condition:
        return None
    if current.built_to is not None:
        return None
    saved = load(tx, current)
    euids = tx.match_page(pid, window(saved.cond, since, until), until, after, BUILD_SPAN)
    if not euids:
        return None
    read = tx.lock_segment_values(
        {(pid, e): set(saved.attributes) for e in euids},
        {pid},
        {(pid, e, saved.id) for e in euids},
    )
    entered: list[int] = []
    left: list[int] = []
    for e in euids:
        was = (pid, e, saved.id) in read.members
        now_in = matches(saved.cond, _typed(read.values.get((pid, e), {}), saved.attributes), until)
        if now_in != was:
            (entered if now_in else left).append(e)
    tx.write_members([(pid, saved.id, e) for e in entered], [(pid, saved.id, e) for e in left])
    if record and (entered or left):
        tx.record_changes(
            [
                _change(pid, e, saved.name, e in entered, SWEEP_SOURCE)
                for e in sorted(entered + left)
            ]
        )
    return euids[-1] if len(euids) == BUILD_SPAN else None


async def _recheck(
    writer: Writer,
    stored: StoredSegment,
    since: datetime,
    until: datetime,
    record: bool,
    stop: threading.Event | None,
) -> bool:
    """:func:`recheck_step` until done, each step a job of the writer; False if stopped."""
    after = 0
    while stop is None or not stop.is_set():
        step = functools.partial(recheck_step, stored, since, until, after, record)
        last = await writer.submit(step)
        if last is None:
            return True
        after = last
    return False


async def sweep(
    writer: Writer,
    now_ms: int,
    stop: threading.Event | None = None,
    *,
    record: bool = True,
) -> int:
    """Check conditions relative to now again, and finish every build left unfinished
    (a server stopped mid-build). A built segment with ``within_last_days`` or
    ``more_than_days_ago`` is checked again for the users time may have moved since its
    ``checked_ms`` (:func:`recheck_step`), which then moves to this sweep's instant; one
    whose ``checked_ms`` is unknown is built again in full. Either way each user who
    entered or left is recorded. Returns how many segments were built or checked."""

    def read(tx_reader: Callable[[Transaction], T]) -> T:
        with writer.storage.read() as tx:
            return tx_reader(tx)

    relative = await asyncio.to_thread(read, _relative_segments)
    done = 0
    for project_id, stored, saved in relative:
        if stop is not None and stop.is_set():
            return done
        at = now()
        if stored.checked_ms is None:
            # Built again below, each span at its own instant, none before ``at``.
            await writer.submit(functools.partial(_rebuild, project_id, saved.id, _ms(at)))
            continue
        if not await _recheck(writer, stored, _instant(stored.checked_ms), at, record, stop):
            return done
        # Unless a build started meanwhile (it set its own instant).
        mark = functools.partial(_mark, stored.id, stored.checked_ms, _ms(at))
        await writer.submit(mark)
        done += 1
    building = await asyncio.to_thread(read, lambda tx: tx.segments_building())
    for stored in building:
        if stop is not None and stop.is_set():
            break
        if await build_async(writer, stored.project_id, stored.name, SWEEP_SOURCE, record, stop):
            done += 1
    if done:
        log.info("segment sweep built or checked %d segment(s)", done)
    return done
