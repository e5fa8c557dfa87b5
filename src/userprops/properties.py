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

from userprops.auth import Principal
from userprops.config import Limits
from userprops.definitions import define_from_values
from userprops.errors import ErrorItem, UserNotFound
from userprops.operations import REQUIRED_TYPE, Op, apply, increase_integer_text, needs_current
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
from userprops.storage.base import StoredValue, Transaction, UserKey, ValueKey


@dataclass(frozen=True)
class PropertyRequest:
    """A parsed ``POST /v1/user/property`` (:func:`userprops.http.wire.parse_property_request`)."""

    euid: int
    op: Op
    properties: dict[str, Any]


@dataclass
class PropertyOutcome:
    """What a property request did: the rejected properties, and attribute types learned
    (read or defined) that the engine may cache once the batch is committed."""

    errors: list[ErrorItem]
    learned: dict[str, AttrType] = field(default_factory=dict)


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
    PostgreSQL transaction aborted, and its commit a silent rollback of the batch."""
    checked = [_candidates(job.request, job.known) for job in jobs]
    types = _group_types(tx, jobs, checked)
    wanted: dict[UserKey, set[str]] = {}
    for job, (candidates, _) in zip(jobs, checked, strict=True):
        names = wanted.setdefault((job.who.project_id, job.request.euid), set())
        if needs_current(job.request.op):
            names.update(candidates)
    current = tx.lock_values(wanted)
    puts: dict[ValueKey, StoredValue] = {}
    deletes: set[ValueKey] = set()
    results: list[PropertyOutcome | Exception] = []
    for job, (candidates, errors) in zip(jobs, checked, strict=True):
        pid, euid = job.who.project_id, job.request.euid
        view = current.get((pid, euid))
        if view is None:
            results.append(UserNotFound())
            continue
        outcome, job_puts, job_deletes = _compute(tx, job, candidates, errors, view, types[pid])
        for name, value in job_puts.items():
            view[name] = value
            deletes.discard((pid, euid, name))
            puts[pid, euid, name] = value
        for name in job_deletes:
            view.pop(name, None)
            puts.pop((pid, euid, name), None)
            deletes.add((pid, euid, name))
        results.append(outcome)
    if puts or deletes:
        tx.write_values(puts, deletes)
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
) -> tuple[PropertyOutcome, dict[str, StoredValue], list[str]]:
    """One job's new values against ``current``: its outcome, puts and deletes."""
    who, op, limits = job.who, job.request.op, job.limits
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
            if op is Op.DELETE:
                deletes.append(name)
                continue
            if op is Op.SET:
                puts[name] = StoredValue(kind, encode_raw(kind, raw, limits, who.tz))
                continue
            stored = current.get(name)
            if op is Op.INCREASE:
                text = stored.text if stored is not None and stored.type is kind else None
                fast = increase_integer_text(text, raw)
                if fast is not None:
                    puts[name] = StoredValue(kind, fast)
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
            puts[name] = StoredValue(kind, encode(kind, after))
    return outcome, puts, deletes


def _check_growth(after: Typed | None, before: Typed | None, limits: Limits) -> None:
    """A LIST may not grow past ``max_stored_list_length`` elements: each write of it reads
    and rewrites it whole in the one writer thread, so a list that grows without end
    (41 MB at 200,000 elements: half a second per ``add``) would stall every project's
    writes. A list already longer (stored before the limit) may still shrink."""
    if isinstance(after, tuple) and len(after) > limits.max_stored_list_length:
        if not isinstance(before, tuple) or len(after) > len(before):
            raise Rejected(f"list would hold more than {limits.max_stored_list_length} elements")


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
