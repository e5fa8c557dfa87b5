"""Bulk import and export (``userprops import``, ``userprops export``; docs/bulk.md).

**Import** reads NDJSON (one body of ``POST /v1/user/property`` per line; ``type`` defaults
to ``set``, and ``identities`` may stand for ``euid``) or CSV (one user per row: the first
header is ``euid`` or an identity name, every other header an attribute). Each line goes
through the same validation as the API and the same group-commit job
(:func:`userprops.properties.run_property_jobs`), ``chunk`` lines per transaction. A line
is answered as the API would answer it; lines not fully applied go to an error report.

Each chunk's transaction also records where the import stands: the number of lines done
and a digest of them (``import_checkpoints``). Run again after an interruption, the import
checks that those lines are unchanged and continues after them, so no line is applied
twice and none is skipped; lines appended to the file since are imported too.

**Export** writes every user of a project as one NDJSON line, ``{"euid", "identities",
"properties"}``, a page of users at a time (memory stays flat however many users), in the
form import reads back to the same state.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import msgspec

from userprops import segments
from userprops.auth import Principal
from userprops.config import Limits
from userprops.engine import render
from userprops.errors import (
    ErrorItem,
    InvalidParameters,
    ProjectNotFound,
    UserpropsError,
    success_message,
)
from userprops.http.wire import decode_object, parse_property_object
from userprops.properties import (
    PropertyJob,
    PropertyOutcome,
    PropertyRequest,
    answer,
    run_property_jobs,
)
from userprops.schema import AttrType, check_timezone
from userprops.segments import SegmentCache
from userprops.storage.base import Storage, Transaction
from userprops.users import IDENTITY_NAMES

CHUNK = 1000
EXPORT_PAGE = 1000
SOURCE = "cli"
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_DECODE = msgspec.json.Decoder(float_hook=Decimal)
_ENCODE = msgspec.json.Encoder(decimal_format="number")


@dataclass
class ImportSummary:
    """What an import run did. ``lines`` counts the lines read by this run (a CSV header
    included), ``skipped`` those a previous run had committed."""

    file: str
    format: str
    lines: int = 0
    skipped: int = 0
    applied: int = 0
    partial: int = 0
    rejected: int = 0
    values: int = 0
    errors_file: str | None = None
    seconds: float = 0.0

    @property
    def values_per_second(self) -> float:
        return self.values / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "lines": self.lines,
            "skipped": self.skipped,
            "applied": self.applied,
            "partial": self.partial,
            "rejected": self.rejected,
            "values": self.values,
            "errors_file": self.errors_file,
            "seconds": round(self.seconds, 3),
            "values_per_second": round(self.values_per_second),
        }


class LineResult(msgspec.Struct, omit_defaults=True):
    """One line's answer, as the API would have given it (``errors``: the rejected
    properties)."""

    line: int
    code: int
    message: str
    errors: list[ErrorItem] | None = None


@dataclass
class _Record:
    """A line of the input: its number, what it asks, and how it finds its user."""

    line: int
    body: dict[str, Any] | None  # None: the line was refused before the job (``refusal``)
    identities: list[tuple[str, str]] = field(default_factory=list)
    refusal: UserpropsError | None = None
    cells: dict[str, str] | None = None  # a CSV row's cells, typed in the job


# Reading the input


def _ndjson(stream: IO[bytes]) -> Iterator[tuple[int, bytes, _Record | None]]:
    """(line number, the line's bytes, its record; None for a blank line)."""
    for number, raw in enumerate(stream, 1):
        if not raw.strip():
            yield number, raw, None
            continue
        try:
            obj = decode_object(raw)
            identities = _identities(obj.pop("identities", None))
            obj.setdefault("type", "set")
            yield number, raw, _Record(number, obj, identities)
        except UserpropsError as error:
            yield number, raw, _Record(number, None, refusal=error)


def _identities(raw: Any) -> list[tuple[str, str]]:
    """``{"user_id": "alice", "registration_id": ["d1", "d2"]}`` as (name, value) pairs."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise InvalidParameters("identities must be an object of identity name to value(s)")
    pairs = []
    for name, values in raw.items():
        if name not in IDENTITY_NAMES:
            raise InvalidParameters(f"unknown identity name {name!r}")
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(value, str) or not value:
                raise InvalidParameters(f"{name}: identity values must be non-empty strings")
            pairs.append((name, value))
    return pairs


def _csv(stream: IO[bytes]) -> Iterator[tuple[int, bytes, _Record | None]]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        yield from _csv_records(csv.reader(text))
    finally:
        text.detach()  # the caller closes the file


def _csv_records(reader: Any) -> Iterator[tuple[int, bytes, _Record | None]]:
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidParameters("the CSV file is empty") from None
    key, names = (header[0].strip() if header else ""), [h.strip() for h in header[1:]]
    if key != "euid" and key not in IDENTITY_NAMES:
        raise InvalidParameters(
            f"the first CSV header must be euid or an identity name ({', '.join(IDENTITY_NAMES)}),"
            f" not {key!r}"
        )
    yield reader.line_num, _record_bytes(header), None
    line = reader.line_num + 1
    for row in reader:
        body: dict[str, Any] = {"type": "set"}
        record = _Record(line, body)
        try:
            if len(row) != len(header):
                raise InvalidParameters(f"{len(row)} cells where the header has {len(header)}")
            keyed = row[0].strip()
            if key == "euid":
                body["euid"] = int(keyed) if keyed.isdigit() else keyed
            elif keyed:
                record.identities = [(key, keyed)]
            else:
                raise InvalidParameters(f"empty {key}")
            record.cells = {n: c for n, c in zip(names, row[1:], strict=True) if c != ""}
        except InvalidParameters as error:
            record = _Record(line, None, refusal=error)
        yield line, _record_bytes(row), record
        line = reader.line_num + 1


def _record_bytes(fields: list[str]) -> bytes:
    """What a CSV record adds to the digest of the lines done."""
    return "\x1f".join(fields).encode("utf-8", "surrogatepass") + b"\x1e"


def csv_value(kind: AttrType | None, text: str) -> Any:
    """A CSV cell as the JSON value it stands for: read as the attribute's defined type,
    or, for an attribute not yet defined, inferred from its text (an integer or decimal is
    NUMBER, true/false BOOL, a DATETIME form with a time part DATETIME, anything else
    STRING). A LIST cell is a JSON array, or one element."""
    if kind is AttrType.NUMBER or (kind is None and _NUMBER.fullmatch(text)):
        if _NUMBER.fullmatch(text.strip()):
            return _DECODE.decode(text.strip())
        return text  # rejected by the type check, with the API's message
    if kind is AttrType.BOOL or (kind is None and text in ("true", "false")):
        return {"true": True, "false": False}.get(text.strip().lower(), text)
    if kind is AttrType.LIST:
        if text.startswith("["):
            try:
                return msgspec.json.decode(text)
            except msgspec.DecodeError:
                return text
        return [text]
    return text


# Running it


def import_file(
    storage: Storage,
    project_slug: str,
    path: Path,
    *,
    fmt: str | None = None,
    chunk: int = CHUNK,
    errors_path: Path | None = None,
    restart: bool = False,
    limits: Limits | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> ImportSummary:
    """Import ``path`` into the project (see the module). ``fmt`` is ``ndjson`` or ``csv``
    (by default from the file's extension); ``progress`` is told how many bytes each
    chunk read. Raises :class:`InvalidParameters` for a file it cannot read at all, or
    one changed since the lines an earlier run committed (unless ``restart``)."""
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "ndjson")
    if fmt not in ("ndjson", "csv"):
        raise InvalidParameters(f"unknown format {fmt!r}; ndjson or csv")
    limits = limits or Limits()
    with storage.read() as tx:
        project = tx.get_project(project_slug)
        if project is None:
            raise ProjectNotFound(f"no project {project_slug!r}")
        name = str(path.resolve())
        checkpoint = None if restart else tx.import_checkpoint(project.id, name)
    who = Principal(
        0, "", project.id, project.schema_mode, check_timezone(project.timezone), SOURCE
    )
    summary = ImportSummary(str(path), fmt)
    errors_path = errors_path or path.with_name(path.name + ".errors.ndjson")
    started = time.monotonic()
    digest = hashlib.sha256()
    done_before, expected = checkpoint or (0, "")
    known: dict[str, AttrType] = {}
    pending: list[_Record] = []
    lines_done = 0
    read_bytes = 0
    errors_out: IO[bytes] | None = None

    def flush() -> None:
        nonlocal errors_out, read_bytes
        done = (lines_done, digest.hexdigest())
        results = _commit(storage, who, limits, name, pending, known, done)
        for record, result in zip(pending, results, strict=True):
            _count(summary, result)
            summary.values += _values(record, result)
            if result.code != 0 or result.errors:
                if errors_out is None:
                    errors_out = errors_path.open("ab" if checkpoint else "wb")
                    summary.errors_file = str(errors_path)
                errors_out.write(_ENCODE.encode(result) + b"\n")
        pending.clear()
        progress(read_bytes)
        read_bytes = 0

    try:
        with path.open("rb") as stream:
            records = _csv(stream) if fmt == "csv" else _ndjson(stream)
            for number, raw, record in records:
                digest.update(raw)
                lines_done = number
                read_bytes += len(raw)
                if number <= done_before:
                    summary.skipped += 1
                    if number == done_before and digest.hexdigest() != expected:
                        raise InvalidParameters(
                            f"{path} changed since an earlier import committed its first"
                            f" {done_before} lines; --restart imports it from its first line"
                        )
                    continue
                summary.lines += 1
                if record is not None:
                    pending.append(record)
                if len(pending) >= chunk:
                    flush()
            if lines_done < done_before:
                raise InvalidParameters(
                    f"{path} is shorter than the {done_before} lines an earlier import"
                    " committed; --restart imports it from its first line"
                )
            if pending or lines_done > done_before:
                flush()
    finally:
        if errors_out is not None:
            errors_out.close()
        summary.seconds = time.monotonic() - started
    return summary


def _count(summary: ImportSummary, result: LineResult) -> None:
    if result.code != 0:
        summary.rejected += 1
    elif result.errors:
        summary.partial += 1
    else:
        summary.applied += 1


def _commit(
    storage: Storage,
    who: Principal,
    limits: Limits,
    name: str,
    records: list[_Record],
    known: dict[str, AttrType],
    done: tuple[int, str],
) -> list[LineResult]:
    """One chunk in one transaction, with the checkpoint after it: ``done`` is (lines
    done, their digest)."""

    def job(tx: Transaction) -> tuple[list[LineResult], dict[str, AttrType]]:
        types = dict(known)  # a run the backend rolls back must not teach the cache
        results = _apply(tx, who, limits, records, types)
        tx.set_import_checkpoint(who.project_id, name, *done)
        return results, types

    (result,) = storage.run_batch([job])
    if isinstance(result, BaseException):
        raise result
    results, types = result
    known.update(types)
    return results  # type: ignore[no-any-return]


def _values(record: _Record, result: LineResult) -> int:
    """How many values a line wrote: its properties but the rejected ones."""
    if result.code != 0 or record.body is None:
        return 0
    return len(record.body.get("properties") or ()) - len(result.errors or ())


def _apply(
    tx: Transaction,
    who: Principal,
    limits: Limits,
    records: list[_Record],
    known: dict[str, AttrType],
) -> list[LineResult]:
    pid = who.project_id
    cells = {n for r in records if r.cells for n in r.cells}
    missing = sorted(cells - known.keys())
    if missing:
        known.update(tx.attribute_types(pid, missing))
    answers: dict[int, LineResult] = {}
    jobs: list[tuple[_Record, PropertyRequest]] = []
    created: list[int] = []
    for record in records:
        try:
            if record.refusal is not None:
                raise record.refusal
            assert record.body is not None
            body = record.body
            if record.cells is not None:
                body["properties"] = {
                    n: csv_value(known.get(n), c) for n, c in record.cells.items()
                }
            if record.identities:
                body["euid"] = _resolve(tx, pid, record.identities, created)
                if not body.get("properties"):
                    answers[record.line] = LineResult(record.line, 0, "success")
                    continue
            jobs.append((record, parse_property_object(body, limits)))
        except UserpropsError as error:
            answers[record.line] = LineResult(record.line, error.code, error.detail, error.errors)
    cache = SegmentCache()
    segments.admit(tx, cache, pid, created, who.source)  # new users, as register does
    property_jobs = [
        PropertyJob(who, request, limits, known, segments=cache) for _, request in jobs
    ]
    results = run_property_jobs(tx, property_jobs) if property_jobs else []
    for (record, request), result in zip(jobs, results, strict=True):
        if isinstance(result, PropertyOutcome):
            known.update(result.learned)
        try:
            rejected = answer(request, result)
        except UserpropsError as error:
            answers[record.line] = LineResult(record.line, error.code, error.detail, error.errors)
            continue
        message = success_message(len(rejected))
        answers[record.line] = LineResult(record.line, 0, message, rejected or None)
    return [answers[r.line] for r in records]


def _resolve(
    tx: Transaction, pid: int, identities: list[tuple[str, str]], created: list[int]
) -> int:
    """The user holding these identity values, created (added to ``created``, and given
    them all) when none is; 55004 when they belong to different users."""
    found = {e for n, v in identities if (e := tx.find_identity(pid, n, v)) is not None}
    if len(found) > 1:
        raise InvalidParameters("these identities belong to different users")
    if found:
        euid = found.pop()
    else:
        euid = tx.create_user(pid)
        created.append(euid)
    for n, v in identities:
        if tx.bind_identity(pid, n, v, euid) != euid:
            raise InvalidParameters(f"{n} {v!r} belongs to another user")
    return euid


def export_project(
    storage: Storage,
    project_slug: str,
    out: IO[bytes],
    *,
    page: int = EXPORT_PAGE,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Write every user of the project to ``out`` as NDJSON, a page at a time; return how
    many users were written."""
    with storage.read() as tx:
        project = tx.get_project(project_slug)
    if project is None:
        raise ProjectNotFound(f"no project {project_slug!r}")
    tz = check_timezone(project.timezone)
    written = 0
    after = 0
    while True:
        with storage.read() as tx:
            euids = tx.list_users(project.id, after, page)
            identities = tx.identities_of(project.id, euids)
        if not euids:
            return written
        values = storage.read_users([(project.id, e) for e in euids])
        lines = []
        for euid, stored in zip(euids, values, strict=True):
            if stored is None:  # erased meanwhile
                continue
            named: dict[str, list[str]] = {}
            for name, value in identities.get(euid, []):
                named.setdefault(name, []).append(value)
            user = {"euid": euid, "identities": named, "properties": render(stored, tz)}
            lines.append(_ENCODE.encode(user))
        if lines:
            out.write(b"\n".join(lines) + b"\n")
        written += len(lines)
        progress(len(lines))
        after = euids[-1]
