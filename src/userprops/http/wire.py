"""Requests off the wire: JSON decoding and the shape checks of every endpoint, each
turning a body or a query string into the parsed request the engine takes.

Checks run in the documented order (docs/errors.md, "Order of checks"; first failure
wins): body is a JSON object (55004), ``euid`` present (40007), ``euid`` an integer in
range (55004), then the other fields (55004). Checks of one item that need the database
(types, users) belong to the engine; an event's own shape is checked here
(:func:`check_event`), so that one bad event is rejected alone.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs

import msgspec

from userprops import history
from userprops.clock import now_ms
from userprops.config import Limits
from userprops.contacts import CONTACT_NAMES, ContactRequest, item
from userprops.engine import RegisterRequest
from userprops.errors import (
    EmptyProperties,
    ErrorItem,
    EuidMissing,
    InvalidParameters,
    InvalidProperties,
    UserpropsError,
)
from userprops.eventlist import DEFAULT_LIMIT, MAX_LIMIT, ListQuery, decode_cursor
from userprops.events import MAX_ITIME, Candidate, EventRejected, ReportRequest
from userprops.history import FeedQuery, HistoryQuery
from userprops.operations import Op
from userprops.properties import MAX_AHEAD_MS, BatchRequest, PropertyRequest
from userprops.queries import (
    DEFAULT_LIMIT as SEGMENT_LIMIT,
    MAX_LIMIT as SEGMENT_MAX,
    MembersQuery,
    SegmentQuery,
)
from userprops.schema import INT64_MAX, Rejected, check_name, checked_text, is_empty
from userprops.segments import SegmentRequest, check_segment_name
from userprops.users import IDENTITY_NAMES, LookupQuery


def _decimal(text: str) -> Decimal:
    """A non-integral number literal, exactly. One whose exponent is past what Decimal
    holds (``9e99999999999999999999``) becomes NaN, which JSON cannot write, so that the
    value is rejected where it stands (55102 for a property), not the whole body."""
    try:
        return Decimal(text)
    except InvalidOperation:
        return Decimal("NaN")


def _integer(text: str) -> int | Decimal:
    """An integer literal; past Python's limit on digits converted (4,300 by default) a
    Decimal of the same value, rejected where it stands like any number out of range."""
    try:
        return int(text)
    except ValueError:
        return _decimal(text)


# Non-integral numbers become Decimal, so arithmetic stays exact.
_DECODER = msgspec.json.Decoder(float_hook=_decimal)
_DIGITS = re.compile(r"[0-9]{1,19}")
_MILLIS = re.compile(r"-?[0-9]{1,16}")
_SECONDS = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?(?:[eE][-+]?[0-9]{1,3})?")


_OPS = {op.value: op for op in Op}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode_slowly(body: bytes) -> Any:
    """The standard library's reading of what msgspec refused. It differs on escaped lone
    surrogates (``"\\ud800"``), which JSON's grammar allows, and on integer literals too
    long for an int: they decode here, so the property holding one is rejected on its own
    (55102) rather than the whole body."""
    try:
        text = body.decode("utf-8")
        return json.loads(
            text, parse_float=_decimal, parse_int=_integer, parse_constant=_reject_constant
        )
    except (ValueError, RecursionError):
        raise InvalidParameters("body is not valid JSON") from None


def decode_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; 55004 for anything else (invalid JSON or UTF-8, NaN,
    nesting too deep, an array at the top). Duplicate keys: the last one wins."""
    try:
        obj = _DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError):
        obj = _decode_slowly(body)
    if not isinstance(obj, dict):
        raise InvalidParameters("body must be a JSON object")
    return obj


def check_euid(value: Any) -> int:
    """40007 for missing, null or ``""``; 55004 unless an integer from 1 to 2^63-1."""
    if value is None or value == "":
        raise EuidMissing()
    if type(value) is not int or not 1 <= value <= INT64_MAX:
        raise InvalidParameters("euid must be an integer from 1 to 9223372036854775807")
    return value


def parse_property_request(body: bytes, limits: Limits) -> PropertyRequest:
    return parse_property_object(decode_object(body), limits)


def parse_property_object(obj: dict[str, Any], limits: Limits) -> PropertyRequest:
    """A body of ``POST /v1/user/property`` already decoded (also one update of a batch,
    or a line of ``userprops import``)."""
    euid = check_euid(obj.get("euid"))
    kind = obj.get("type")
    op = _OPS.get(kind) if isinstance(kind, str) else None
    if op is None:
        allowed = ", ".join(op.value for op in Op)
        raise InvalidParameters(f"type must be one of {allowed}")
    properties = obj.get("properties")
    if not isinstance(properties, dict) or not properties:
        raise InvalidParameters("properties must be a non-empty JSON object")
    if len(properties) > limits.max_properties:
        raise InvalidParameters(f"more than {limits.max_properties} properties")
    return PropertyRequest(euid, op, properties, check_timestamp(obj.get("timestamp")))


def check_timestamp(value: Any) -> int | None:
    """A write's optional ``timestamp`` (docs/bulk.md, "Event time"): None when absent or
    null; 55004 unless an integer of epoch milliseconds from 0 to
    :data:`~userprops.properties.MAX_AHEAD_MS` ahead of this server's clock."""
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise InvalidParameters("timestamp must be an integer of epoch milliseconds")
    if value > now_ms() + MAX_AHEAD_MS:
        raise InvalidParameters(
            f"timestamp is more than {MAX_AHEAD_MS // 60_000} minutes ahead of the server's clock"
        )
    return value


def parse_batch_request(body: bytes, limits: Limits) -> BatchRequest:
    """``POST /v1/user/property/batch``: 55004 unless ``updates`` is an array of 1 to
    ``max_batch`` items; then each update on its own, a bad one answered in its place
    with the code it would have got alone (40007 or 55004)."""
    obj = decode_object(body)
    updates = obj.get("updates")
    if not isinstance(updates, list) or not updates:
        raise InvalidParameters("updates must be a non-empty array of property bodies")
    if len(updates) > limits.max_batch:
        raise InvalidParameters(f"more than {limits.max_batch} updates")
    parsed: list[PropertyRequest | UserpropsError] = []
    for update in updates:
        try:
            if not isinstance(update, dict):
                raise InvalidParameters("update must be a JSON object")
            parsed.append(parse_property_object(update, limits))
        except UserpropsError as error:
            parsed.append(error)
    return BatchRequest(parsed)


def parse_delete_request(body: bytes) -> int:
    """``POST /v1/user/delete``: the EUID to erase (40007/55004 as everywhere)."""
    return check_euid(decode_object(body).get("euid"))


def parse_register_request(body: bytes, limits: Limits) -> RegisterRequest:
    obj = decode_object(body)
    name = obj.get("identity_name")
    if name not in IDENTITY_NAMES:
        raise InvalidParameters(f"identity_name must be one of {', '.join(IDENTITY_NAMES)}")
    values = obj.get("identity_values")
    if not isinstance(values, list) or not values:
        raise InvalidParameters("identity_values must be a non-empty array")
    if len(values) > limits.max_identity_values:
        raise InvalidParameters(f"more than {limits.max_identity_values} identity_values")
    return RegisterRequest(name, values)


def parse_contact_request(body: bytes) -> ContactRequest:
    """The request of ``POST /v1/user/contact``; 55004 with ``errors`` listing unknown
    contact names (the whole request is rejected: a misspelt name is a client bug)."""
    obj = decode_object(body)
    euid = check_euid(obj.get("euid"))
    contacts = obj.get("contacts")
    if not isinstance(contacts, dict) or not contacts:
        raise InvalidParameters("contacts must be a non-empty JSON object")
    unknown = [name for name in contacts if name not in CONTACT_NAMES]
    if unknown:
        raise InvalidParameters(
            f"unknown contact name(s); known: {', '.join(CONTACT_NAMES)}",
            errors=[item(n, InvalidParameters.code, "unknown contact name") for n in unknown],
        )
    return ContactRequest(euid, contacts)


def parse_report_request(body: bytes, limits: Limits) -> ReportRequest:
    """55004 unless ``data`` is an array of 1 to ``max_events`` items and ``app_key``,
    when given, a string; then each event's shape, on its own (:func:`check_event`)."""
    obj = decode_object(body)
    app_key = obj.get("app_key")
    if app_key is not None and app_key != "":
        try:
            app_key = checked_text(app_key, limits, "app_key")
        except Rejected as reason:
            raise InvalidParameters(reason.reason) from None
    data = obj.get("data")
    if not isinstance(data, list) or not data:
        raise InvalidParameters("data must be a non-empty array of events")
    if len(data) > limits.max_events:
        raise InvalidParameters(f"more than {limits.max_events} events")
    candidates: list[Candidate] = []
    rejected: list[ErrorItem] = []
    for i, raw in enumerate(data):
        try:
            candidates.append(check_event(i, raw, limits))
        except EventRejected as reason:
            rejected.append(reason.item(i))
    return ReportRequest(app_key or None, len(data), candidates, rejected)


def check_event(index: int, raw: Any, limits: Limits) -> Candidate:
    """The shape of one event, or :class:`EventRejected`."""
    if not isinstance(raw, dict):
        raise EventRejected(InvalidParameters.code, "event must be a JSON object")
    try:
        euid = check_euid(raw.get("euid"))
    except UserpropsError as error:
        raise EventRejected(error.code, error.detail) from None
    name = raw.get("event_name")
    if not isinstance(name, str):
        raise EventRejected(InvalidParameters.code, "event_name must be a string")
    try:
        check_name(name)
    except Rejected as reason:
        raise EventRejected(InvalidParameters.code, f"event_name: {reason.reason}") from None
    itime = raw.get("itime")
    if type(itime) is not int or not 0 <= itime <= MAX_ITIME:
        raise EventRejected(
            InvalidParameters.code, "itime must be an integer of epoch milliseconds"
        )
    random_id = raw.get("random_id")
    if random_id is not None:
        try:
            random_id = checked_text(random_id, limits, "random_id")
        except Rejected as reason:
            raise EventRejected(InvalidParameters.code, reason.reason) from None
    properties = raw.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise EventRejected(InvalidParameters.code, "properties must be a JSON object")
    if len(properties) > limits.max_properties:
        raise EventRejected(InvalidParameters.code, f"more than {limits.max_properties} properties")
    for prop, value in properties.items():
        try:
            check_name(prop)
        except Rejected as reason:
            raise EventRejected(InvalidProperties.code, reason.reason, prop) from None
        if is_empty(value):
            raise EventRejected(EmptyProperties.code, "value is empty", prop)
    return Candidate(index, euid, name, itime, random_id, properties)


class _Query:
    """The parameters of a query string, each read and checked by name (55004 when
    malformed). A parameter not among ``names`` or given twice is 55004 too: a misspelt
    ``limt=10`` would else be ignored without a word. ``euid`` is checked first (40007,
    55004), as EngageLab does."""

    def __init__(self, query_string: bytes, *names: str) -> None:
        try:
            self._params = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
        except ValueError:
            raise InvalidParameters("malformed query string") from None
        if "euid" in names:
            self.euid()
        for name, values in self._params.items():
            if name not in names:
                known = ", ".join(names)
                raise InvalidParameters(f"unknown query parameter {name[:64]!r}; known: {known}")
            if len(values) > 1:
                raise InvalidParameters(f"query parameter {name[:64]!r} given more than once")

    def text(self, name: str) -> str:
        """The parameter's value; ``""`` when absent."""
        return self._params.get(name, [""])[0]

    def euid(self) -> int:
        """``euid``: 40007 when absent or empty, 55004 when not in range."""
        raw = self.text("euid")
        if raw == "":
            raise EuidMissing()
        if not _DIGITS.fullmatch(raw):
            raise InvalidParameters("euid must be an integer from 1 to 9223372036854775807")
        return check_euid(int(raw))

    def _number(self, name: str) -> str | None:
        """A numeric parameter's value; None when absent. Given empty (``from=``), it is
        not a number: 55004 as any other."""
        return self._params[name][0] if name in self._params else None

    def millis(self, name: str) -> int | None:
        raw = self._number(name)
        if raw is None:
            return None
        if not _MILLIS.fullmatch(raw):
            raise InvalidParameters(f"{name} must be an integer of epoch milliseconds")
        return int(raw)

    def integer(self, name: str, low: int, high: int, default: int) -> int:
        raw = self._number(name)
        if raw is None:
            return default
        if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
            raise InvalidParameters(f"{name} must be an integer from {low} to {high}")
        return int(raw)

    def seconds(self, name: str, high: float) -> float:
        raw = self._number(name)
        if raw is None:
            return 0.0
        if not _SECONDS.fullmatch(raw) or float(raw) > high:
            raise InvalidParameters(f"{name} must be a number of seconds from 0 to {high:g}")
        return float(raw)


def parse_euid_query(query_string: bytes) -> int:
    """``euid`` of a query string: 40007 when absent or empty, 55004 when not in range."""
    return _Query(query_string, "euid").euid()


def parse_list_query(query_string: bytes) -> ListQuery:
    """``GET /v1/event/list``: ``euid`` (40007/55004 as everywhere), then ``from``,
    ``to``, ``limit``, ``cursor`` (55004 when malformed)."""
    query = _Query(query_string, "euid", "limit", "cursor", "from", "to")
    euid = query.euid()
    limit = query.integer("limit", 1, MAX_LIMIT, DEFAULT_LIMIT)
    cursor = query.text("cursor")
    before = decode_cursor(cursor) if cursor else None
    return ListQuery(euid, query.millis("from"), query.millis("to"), limit, before)


def parse_history_query(query_string: bytes) -> HistoryQuery:
    """``GET /v1/user/history``: ``euid``, then ``property`` (an attribute name),
    ``from``, ``to``, ``limit``, ``cursor`` (55004 when malformed)."""
    query = _Query(query_string, "euid", "property", "limit", "cursor", "from", "to")
    euid = query.euid()
    prop = query.text("property") or None
    if prop is not None:
        try:
            check_name(prop)
        except Rejected as reason:
            raise InvalidParameters(f"property: {reason.reason}") from None
    limit = query.integer("limit", 1, history.MAX_LIMIT, history.DEFAULT_LIMIT)
    cursor = query.text("cursor")
    before = history.decode_cursor(cursor) if cursor else None
    return HistoryQuery(euid, prop, query.millis("from"), query.millis("to"), limit, before)


def parse_feed_query(query_string: bytes) -> FeedQuery:
    """``GET /v1/changes``: ``after`` (a seq, default 0), ``limit`` (1 to 1000, default
    100), ``wait`` (0 to 30 seconds, default 0); 55004 when malformed."""
    query = _Query(query_string, "after", "limit", "wait")
    after = query.integer("after", 0, INT64_MAX, 0)
    limit = query.integer("limit", 1, history.FEED_MAX_LIMIT, history.FEED_DEFAULT_LIMIT)
    return FeedQuery(after, limit, query.seconds("wait", history.MAX_WAIT))


def parse_lookup_query(query_string: bytes, limits: Limits) -> LookupQuery:
    """``GET /v1/user/lookup``: ``identity_name`` one of the identity names and
    ``identity_value`` a string of 1 to ``max_string_length`` characters; else 55004."""
    query = _Query(query_string, "identity_name", "identity_value")
    name = query.text("identity_name")
    if name not in IDENTITY_NAMES:
        raise InvalidParameters(f"identity_name must be one of {', '.join(IDENTITY_NAMES)}")
    try:
        value = checked_text(query.text("identity_value"), limits, "identity_value")
    except Rejected as reason:
        raise InvalidParameters(reason.reason) from None
    return LookupQuery(name, value)


def parse_segment_query(body: bytes) -> SegmentQuery:
    """``POST /v1/segment/query``: ``where`` (checked by the engine), ``limit`` (0 to
    1000, default 100; 0 counts only), ``cursor``; 55004 when malformed."""
    obj = decode_object(body)
    if "where" not in obj:
        raise InvalidParameters("where is required: a condition")
    limit = obj.get("limit", SEGMENT_LIMIT)
    if type(limit) is not int or not 0 <= limit <= SEGMENT_MAX:
        raise InvalidParameters(f"limit must be an integer from 0 to {SEGMENT_MAX}")
    return SegmentQuery(obj["where"], limit, _cursor(obj.get("cursor")))


def _cursor(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise InvalidParameters("cursor must be a string")
    return raw


def parse_segment_request(body: bytes) -> SegmentRequest:
    """``POST /v1/segment``: ``name`` (an attribute-like name) and ``where``."""
    obj = decode_object(body)
    name = check_segment_name(obj.get("name"))
    if "where" not in obj:
        raise InvalidParameters("where is required: a condition")
    return SegmentRequest(name, obj["where"])


def parse_members_query(query_string: bytes) -> MembersQuery:
    """``GET /v1/segment/members``: ``name``, ``limit`` (0 to 1000), ``cursor``."""
    query = _Query(query_string, "name", "limit", "cursor")
    name = check_segment_name(query.text("name"))
    limit = query.integer("limit", 0, SEGMENT_MAX, SEGMENT_LIMIT)
    return MembersQuery(name, limit, query.text("cursor") or None)
