"""The engine: the one place that combines schema, operations and storage.

Each write is a job run by the group-commit :class:`~userprops.writer.Writer` inside one
transaction: it locks the user, reads what it needs, computes every new value with the
pure operations, then writes. A job never writes before it has decided, so a rejected
property never half-applies; a failed commit fails the whole request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from userprops.auth import Principal
from userprops.config import Limits
from userprops.errors import (
    EmptyProperties,
    ErrorItem,
    InvalidParameters,
    InvalidProperties,
    UserNotFound,
)
from userprops.http.wire import PropertyRequest, RegisterRequest
from userprops.operations import REQUIRED_TYPE, Op, apply, increase_integer_text, needs_current
from userprops.reader import Reader
from userprops.schema import (
    AttrType,
    Rejected,
    SchemaMode,
    Typed,
    check_name,
    decode,
    encode,
    infer_type,
    is_empty,
    parse_value,
    storable_text,
    stored_text,
    to_json,
)
from userprops.storage.base import StoredValue, Transaction, UserKey, ValueKey
from userprops.writer import Writer


@dataclass
class PropertyOutcome:
    """What a property request did: the rejected properties, and attribute types learned
    (read or defined) that the engine may cache once the batch is committed."""

    errors: list[ErrorItem]
    learned: dict[str, AttrType] = field(default_factory=dict)


@dataclass
class RegisterOutcome:
    data: list[dict[str, Any]]
    errors: list[ErrorItem]


def _rejection(name: str, reason: Rejected) -> ErrorItem:
    code = EmptyProperties.code if reason.empty else InvalidProperties.code
    return {"property": name, "code": code, "message": reason.reason}


class Engine:
    def __init__(self, writer: Writer, reader: Reader, limits: Limits) -> None:
        self._writer = writer
        self._reader = reader
        self._limits = limits
        # Positive entries only: a defined type never changes, so they never go stale.
        self._types: dict[int, dict[str, AttrType]] = {}

    # POST /v1/user/property

    async def set_properties(self, who: Principal, request: PropertyRequest) -> list[ErrorItem]:
        """Apply a request; return the rejected properties (empty on full success).

        Raises :class:`UserNotFound`, or 55102/55103 when every property is rejected.
        """
        outcome = await self._writer.submit(self.property_job(who, request))
        self._types.setdefault(who.project_id, {}).update(outcome.learned)
        errors = outcome.errors
        if len(errors) == len(request.properties):
            empty = all(e["code"] == EmptyProperties.code for e in errors)
            raise (EmptyProperties if empty else InvalidProperties)(errors=errors)
        return errors

    def property_job(self, who: Principal, request: PropertyRequest) -> PropertyJob:
        return PropertyJob(who, request, self._limits, self._types.get(who.project_id, {}))

    # POST /v1/user/register

    async def register(self, who: Principal, request: RegisterRequest) -> RegisterOutcome:
        """Get or create one user per identity value. Bad values are reported in
        ``errors`` by index; when every value is bad, raises 55004 with them."""
        errors: list[ErrorItem] = []
        values: list[str] = []
        for i, value in enumerate(request.identity_values):
            try:
                values.append(storable_text(value, self._limits, "identity value"))
            except Rejected as reason:
                errors.append(
                    {
                        "index": i,
                        "identity_value": value,
                        "code": InvalidParameters.code,
                        "message": reason.reason,
                    }
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

        resolved = await self._writer.submit(job)
        data = [{"identity_value": v, "euid": resolved[v]} for v in values]
        return RegisterOutcome(data, errors)

    # GET /v1/user/property

    async def get_properties(self, who: Principal, euid: int) -> dict[str, Any]:
        stored = await self._reader.read_user(who.project_id, euid)
        if stored is None:
            raise UserNotFound()
        return {"euid": euid, "properties": render(stored, who.tz)}


def render(stored: dict[str, StoredValue], tz: tzinfo) -> dict[str, Any]:
    """Stored values in the JSON form they are read back in."""
    return {n: to_json(v.type, decode(v.type, v.text), tz) for n, v in stored.items()}


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
            errors.append(_rejection(name, reason))
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
                puts[name] = StoredValue(kind, stored_text(kind, raw, limits, who.tz))
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
        except Rejected as reason:
            outcome.errors.append(_rejection(name, reason))
            continue
        if after is None:
            deletes.append(name)
        else:
            puts[name] = StoredValue(kind, encode(kind, after))
    return outcome, puts, deletes


def _define(
    tx: Transaction,
    who: Principal,
    op: Op,
    name: str,
    raw: Any,
    limits: Limits,
    types: dict[str, AttrType],
) -> AttrType:
    """Define an undefined attribute from its first value (``auto`` mode), after checking
    that the value fits the inferred type, so a rejected value defines nothing. The type
    it has now goes in ``types``, for the jobs after this one, also when another process
    defined it meanwhile (after the group read the types) and this value is rejected."""
    if who.schema_mode is SchemaMode.STRICT:
        raise Rejected(f"attribute {name} is not defined (project schema is strict)")
    kind = REQUIRED_TYPE[op] or infer_type(raw)
    if kind is None:
        raise Rejected("cannot infer an attribute type from a JSON object")
    parse_value(kind, raw, limits, who.tz)
    actual = types[name] = tx.define_attribute(who.project_id, name, kind)
    if actual is not kind:
        raise Rejected(f"attribute {name} was defined as {actual} meanwhile")
    return kind
