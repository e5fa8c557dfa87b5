"""Property writes (``POST /v1/user/property``): the group-commit job of a request, and
how consecutive ones run together.

A job locks the user, reads what it needs, computes every new value with the pure
operations, then writes. It never writes before it has decided, so a rejected property
never half-applies; a failed commit fails the whole request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from userprops.auth import Principal
from userprops.clock import now_ms
from userprops.config import Limits
from userprops.definitions import define_from_values
from userprops.errors import (
    EmptyProperties,
    ErrorItem,
    InvalidProperties,
    StaleProperty,
    UserNotFound,
    UserpropsError,
    success_message,
)
from userprops.operations import (
    REQUIRED_TYPE,
    Op,
    apply,
    event_time,
    increase_integer_text,
    is_stale,
)
from userprops.schema import (
    AttrType,
    Rejected,
    SchemaMode,
    Typed,
    check_name,
    decode,
    encode,
    encode_raw,
    is_empty,
    parse_value,
)
from userprops.segments import Membership, SegmentCache
from userprops.storage.base import NewChange, StoredValue, Transaction, UserKey, ValueKey

MAX_AHEAD_MS = 3_600_000
"""How far ahead of the server's clock a write's ``timestamp`` may be (one hour): a client
whose clock runs fast holds a value against writes of the right time for at most that
long."""


@dataclass(frozen=True)
class PropertyRequest:
    """A parsed ``POST /v1/user/property`` (:func:`userprops.http.wire.parse_property_request`);
    ``timestamp``: its event time in epoch milliseconds, None for "now" (docs/bulk.md,
    "Event time")."""

    euid: int
    op: Op
    properties: dict[str, Any]
    timestamp: int | None = None


@dataclass(frozen=True)
class BatchRequest:
    """A parsed ``POST /v1/user/property/batch``: each update parsed, or the error it got
    alone (:func:`userprops.http.wire.parse_batch_request`)."""

    updates: list[PropertyRequest | UserpropsError]


class BatchItem(msgspec.Struct, omit_defaults=True):
    """One update's answer in a batch: the code it would have got alone."""

    index: int
    code: int
    message: str
    errors: list[ErrorItem] | None = None


@dataclass
class BatchOutcome:
    items: list[BatchItem]
    learned: dict[str, AttrType] = field(default_factory=dict)
    changes: int = 0


@dataclass
class PropertyOutcome:
    """What a property request did: the rejected properties, and attribute types learned
    (read or defined) that the engine may cache once the batch is committed."""

    errors: list[ErrorItem]
    learned: dict[str, AttrType] = field(default_factory=dict)
    changes: int = 0  # how many changes it recorded in the history


def answer(request: PropertyRequest, result: PropertyOutcome | Exception) -> list[ErrorItem]:
    """A request's rejected properties (empty on full success) from its job's result;
    raises what the request is answered with otherwise: the job's exception (such as
    :class:`UserNotFound`), or 55102/55103 when every property was rejected."""
    if isinstance(result, Exception):
        raise result
    errors = result.errors
    if len(errors) == len(request.properties):
        empty = all(e.code == EmptyProperties.code for e in errors)
        raise (EmptyProperties if empty else InvalidProperties)(errors=errors)
    return errors


def rejection(name: str, reason: Rejected) -> ErrorItem:
    """The error item of a rejected property."""
    return ErrorItem(property=name, code=reason.code, message=reason.reason)


def run_property_jobs(
    tx: Transaction, jobs: Sequence[PropertyJob]
) -> list[PropertyOutcome | Exception]:
    """Run property jobs in order, as if one after the other, with one read (every user
    locked, every value needed) and one write for all of them. Each job's result is its
    outcome, or :class:`UserNotFound`, which leaves the others alone. A job decides before
    it writes: a rejected property is never half-applied.

    Anything else raised (a statement that failed, a bug) is raised for the whole group:
    the backend's :meth:`~userprops.storage.base.Storage.run_batch` must see it, to run
    the batch again after a deadlock, fail it when the database failed, or else undo the
    group and answer each of its jobs with it. Kept as one job's answer, it would leave a
    PostgreSQL transaction aborted, and its commit a silent rollback of the batch.

    Every value a job names is read, with its event time: a set or delete with a
    timestamp older than the stored value's is rejected (:class:`StaleProperty`), and a
    write of the same value at a newer time only moves that time forward (no change
    recorded). A write without a timestamp is "now": it applies as the newest, at the
    server's clock (or at the stored time when that is ahead: a timestamp may be up to
    :data:`MAX_AHEAD_MS` ahead, and clocks of two servers differ), so writers that send no
    timestamps see no rejection for time, whatever the clocks."""
    checked = [_candidates(job.request, job.known) for job in jobs]
    types = _group_types(tx, jobs, checked)
    wanted: dict[UserKey, set[str]] = {}
    membership = Membership(jobs[0].segments)
    now = now_ms()
    for job, (candidates, _) in zip(jobs, checked, strict=True):
        key = (job.who.project_id, job.request.euid)
        wanted.setdefault(key, set()).update(candidates)
        membership.want(key, candidates)
    current = membership.read(tx, wanted)  # with what the touched segments need
    puts: dict[ValueKey, StoredValue] = {}
    deletes: set[ValueKey] = set()
    before: dict[ValueKey, StoredValue | None] = {}  # what the batch overwrites, as stored
    changes: list[NewChange] = []
    results: list[PropertyOutcome | Exception] = []
    for job, (candidates, errors) in zip(jobs, checked, strict=True):
        pid, euid = job.who.project_id, job.request.euid
        view = current.get((pid, euid))
        if view is None:
            results.append(UserNotFound())
            continue
        outcome, job_puts, job_deletes = _compute(
            tx, job, candidates, errors, view, types[pid], now
        )
        op, source, recorded = job.request.op.value, job.who.source, len(changes)
        changed: list[str] = []
        for name, value in job_puts.items():
            old = view.get(name)
            if old == value:
                continue  # nothing changes: nothing written, nothing recorded
            if not value.same_value(old):  # else only its time moves forward: no change
                changed.append(name)
                if job.history:
                    old_text = None if old is None else old.text
                    changes.append(
                        NewChange(pid, euid, name, op, value.type, old_text, value.text, source)
                    )
            before.setdefault((pid, euid, name), old)
            view[name] = value
            deletes.discard((pid, euid, name))
            puts[pid, euid, name] = value
        for name in job_deletes:
            old = view.pop(name, None)
            if old is None:
                continue
            before.setdefault((pid, euid, name), old)
            if job.history:
                changes.append(NewChange(pid, euid, name, op, old.type, old.text, None, source))
            puts.pop((pid, euid, name), None)
            deletes.add((pid, euid, name))
            changed.append(name)
        # Saved segments reading a changed attribute: entered and left, after the values.
        moved = membership.after(pid, euid, changed, view, source)
        if job.history:
            changes += moved
        outcome.changes = len(changes) - recorded
        results.append(outcome)
    if puts or deletes:
        tx.write_values(puts, deletes, before)
    membership.write(tx)
    if changes:
        tx.record_changes(changes)
    return results


@dataclass(eq=False)
class PropertyJob:
    """The write of one ``POST /v1/user/property``. Called with a transaction it runs
    alone; the writer runs consecutive property jobs of a batch together through
    :attr:`run_many`, which reads and writes for all of them in a few statements."""

    who: Principal
    request: PropertyRequest
    limits: Limits
    known: dict[str, AttrType]
    history: bool = True  # record changes
    segments: SegmentCache = field(default_factory=SegmentCache)  # shared by a process's jobs

    def __call__(self, tx: Transaction) -> PropertyOutcome:
        (result,) = run_property_jobs(tx, [self])
        if isinstance(result, Exception):
            raise result
        return result

    # The writer runs consecutive jobs sharing a ``run_many`` through it, in one call.
    run_many = staticmethod(run_property_jobs)


def _candidates(
    request: PropertyRequest, known: dict[str, AttrType]
) -> tuple[dict[str, Any], list[ErrorItem]]:
    """The properties worth looking at, and the rejections of the others (bad names,
    empty values)."""
    errors: list[ErrorItem] = []
    candidates: dict[str, Any] = {}
    for name, raw in request.properties.items():
        try:
            if name not in known:  # a known attribute's name was checked when defined
                check_name(name)
            if request.op is not Op.DELETE and is_empty(raw):
                raise Rejected("value is empty", empty=True)
        except Rejected as reason:
            errors.append(rejection(name, reason))
            continue
        candidates[name] = raw
    return candidates, errors


def _group_types(
    tx: Transaction,
    jobs: Sequence[PropertyJob],
    checked: Sequence[tuple[dict[str, Any], list[ErrorItem]]],
) -> dict[int, dict[str, AttrType]]:
    """Per project, the types of every attribute the jobs name: from each job's cache,
    else read once for the group. Jobs that define an attribute add it here, so later
    jobs of the group see it."""
    types: dict[int, dict[str, AttrType]] = {}
    missing: dict[int, set[str]] = {}
    for job, (candidates, _) in zip(jobs, checked, strict=True):
        pid = job.who.project_id
        group = types.setdefault(pid, {})
        for name in candidates:
            if name in group:
                continue
            kind = job.known.get(name)
            if kind is None:
                missing.setdefault(pid, set()).add(name)
            else:
                group[name] = kind
    for pid, names in missing.items():
        types[pid].update(tx.attribute_types(pid, sorted(names - types[pid].keys())))
    return types


def _compute(
    tx: Transaction,
    job: PropertyJob,
    candidates: dict[str, Any],
    rejected: list[ErrorItem],
    current: dict[str, StoredValue],
    types: dict[str, AttrType],
    now: int,
) -> tuple[PropertyOutcome, dict[str, StoredValue], list[str]]:
    """One job's new values against ``current`` (every value it names), each with its
    event time: its outcome, puts and deletes."""
    who, op, limits, timestamp = job.who, job.request.op, job.limits, job.request.timestamp
    outcome = PropertyOutcome(errors=list(rejected))
    puts: dict[str, StoredValue] = {}
    deletes: list[str] = []
    for name, raw in candidates.items():
        try:
            kind = types.get(name)
            if kind is None and op is Op.DELETE:
                continue  # nothing to delete, nothing to define
            if kind is None:
                kind = _define(tx, who, op, name, raw, limits, types)
            if job.known.get(name) is not kind:
                outcome.learned[name] = kind
            needed = REQUIRED_TYPE[op]
            if needed is not None and kind is not needed:
                raise Rejected(f"{op.value} needs a {needed} attribute; {name} is {kind}")
            stored = current.get(name)
            stored_ts = None if stored is None else stored.ts
            # An invalid value is reported as such, whatever its time.
            text = encode_raw(kind, raw, limits, who.tz) if op is Op.SET else ""
            if timestamp is not None and is_stale(op, stored_ts, timestamp):
                outcome.errors.append(_stale(name, stored_ts, timestamp))
                continue
            ts = event_time(stored_ts, now if timestamp is None else timestamp)
            if op is Op.SET:
                puts[name] = StoredValue(kind, text, ts)
                continue
            if op is Op.DELETE:
                if stored is not None:
                    deletes.append(name)
                continue
            if op is Op.INCREASE:
                base = stored.text if stored is not None and stored.type is kind else None
                fast = increase_integer_text(base, raw)
                if fast is not None:
                    puts[name] = StoredValue(kind, fast, ts)
                    continue
            arg = parse_value(kind, raw, limits, who.tz)
            before: Typed | None = None
            if stored is not None and stored.type is kind:
                before = decode(kind, stored.text)
            after = apply(op, before, arg)
            _check_growth(after, before, limits)
        except Rejected as reason:
            outcome.errors.append(rejection(name, reason))
            continue
        if after is None:
            deletes.append(name)
        else:
            puts[name] = StoredValue(kind, encode(kind, after), ts)
    return outcome, puts, deletes


def _check_growth(after: Typed | None, before: Typed | None, limits: Limits) -> None:
    """A LIST may not grow past ``max_stored_list_length`` elements: each write of it reads
    and rewrites it whole in the one writer thread, so a list that grows without end
    (41 MB at 200,000 elements: half a second per ``add``) would stall every project's
    writes. A list already longer (stored before the limit) may still shrink."""
    if isinstance(after, tuple) and len(after) > limits.max_stored_list_length:
        if not isinstance(before, tuple) or len(after) > len(before):
            raise Rejected(f"list would hold more than {limits.max_stored_list_length} elements")


def _stale(name: str, stored_ts: int | None, at: int) -> ErrorItem:
    message = f"{StaleProperty.message} (stored at {stored_ts}, written at {at})"
    return ErrorItem(property=name, code=StaleProperty.code, message=message)


def _define(
    tx: Transaction,
    who: Principal,
    op: Op,
    name: str,
    raw: Any,
    limits: Limits,
    types: dict[str, AttrType],
) -> AttrType:
    """Define an undefined attribute from its first value (``auto`` mode). The type it has
    now goes in ``types``, for the jobs after this one, also when another process defined
    it meanwhile (after the group read the types) and this value is rejected."""
    if who.schema_mode is SchemaMode.STRICT:
        raise Rejected(f"attribute {name} is not defined (project schema is strict)")

    def define(name: str, kind: AttrType) -> AttrType:
        actual = types[name] = tx.define_attribute(who.project_id, name, kind)
        return actual

    kinds = define_from_values(
        {name: raw},
        lambda kind, value: parse_value(kind, value, limits, who.tz),
        define,
        required=REQUIRED_TYPE[op],
    )
    return kinds[name][0]


@dataclass(eq=False)
class BatchJob:
    """The writes of one ``POST /v1/user/property/batch``: its updates run as one group
    (one read and one write for all of them), each answered with the code it would have
    got alone. A storage failure fails the whole batch."""

    who: Principal
    request: BatchRequest
    limits: Limits
    known: dict[str, AttrType]
    history: bool = True
    segments: SegmentCache = field(default_factory=SegmentCache)

    def __call__(self, tx: Transaction) -> BatchOutcome:
        updates = self.request.updates
        jobs = [
            PropertyJob(self.who, update, self.limits, self.known, self.history, self.segments)
            for update in updates
            if isinstance(update, PropertyRequest)
        ]
        results = iter(run_property_jobs(tx, jobs) if jobs else [])
        outcome = BatchOutcome(items=[])
        for index, update in enumerate(updates):
            if isinstance(update, UserpropsError):
                outcome.items.append(_item(index, update))
                continue
            result = next(results)
            if isinstance(result, PropertyOutcome):
                outcome.learned.update(result.learned)
                outcome.changes += result.changes
            try:
                errors = answer(update, result)
            except UserpropsError as error:
                outcome.items.append(_item(index, error))
                continue
            message = success_message(len(errors))
            outcome.items.append(BatchItem(index, 0, message, errors or None))
        return outcome


def _item(index: int, error: UserpropsError) -> BatchItem:
    return BatchItem(index, error.code, error.detail, error.errors)
