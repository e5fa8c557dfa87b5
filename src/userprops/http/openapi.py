"""The published contract: an OpenAPI 3.1 document of every endpoint (docs/http-api.md).

Built from the error table, so every code appears with its HTTP status. Tests keep it
true: every route in :data:`userprops.http.routes.ROUTES` is documented and nothing else, every
code of :data:`userprops.errors.CODE_TABLE` appears, and schemathesis fuzzes the running
app against it (tests/unit/test_openapi.py, tests/http/test_openapi.py).

To document a new endpoint (contacts, events, metrics): add its request and answer
schemas below, then its entry to :func:`_paths` with the error classes it can answer.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from userprops import __version__
from userprops.conditions import MAX_DEPTH, MAX_LEAVES, Operator
from userprops.config import Limits
from userprops.contacts import CONTACT_NAMES
from userprops.errors import (
    CODE_TABLE,
    AuthenticationFailed,
    Conflict,
    ContactExists,
    DataSourceNotFound,
    DeliveryNotFound,
    EmptyProperties,
    EuidMissing,
    HeadersTooLarge,
    IdempotencyKeyReused,
    InternalError,
    InvalidParameters,
    InvalidProperties,
    MethodNotAllowed,
    PathNotFound,
    PayloadTooLarge,
    ProjectNotFound,
    RateLimited,
    RequestTimeout,
    StaleProperty,
    StorageUnavailable,
    UserNotFound,
    UserpropsError,
    WebhookNotFound,
)
from userprops.eventlist import MAX_LIMIT
from userprops.events import MAX_ITIME
from userprops.history import CHANGE_OPS, FEED_MAX_LIMIT, MAX_LIMIT as HISTORY_LIMIT, MAX_WAIT
from userprops.operations import Op
from userprops.properties import MAX_AHEAD_MS
from userprops.queries import MAX_LIMIT as SEGMENT_MAX
from userprops.schema import INT64_MAX, MAX_NAME_LENGTH
from userprops.users import IDENTITY_NAMES

Schema = dict[str, Any]
LIMITS = Limits()  # the defaults; a server configured otherwise documents these
NAME_PATTERN = f"^[a-z][a-z0-9_]{{0,{MAX_NAME_LENGTH - 1}}}$"
Errors = tuple[type[UserpropsError], ...]

# Codes no HTTP endpoint answers: the command line's.
NOT_OVER_HTTP: Errors = (
    ProjectNotFound,
    DataSourceNotFound,
    WebhookNotFound,
    DeliveryNotFound,
    Conflict,
)

EUID: Schema = {"type": "integer", "minimum": 1, "maximum": INT64_MAX, "format": "int64"}
VALUE: Schema = {
    "description": "STRING, NUMBER, BOOL, DATETIME (a string or epoch milliseconds) or LIST",
    "type": ["string", "number", "boolean", "array"],
    "items": {"type": "string"},
}
NULLABLE_VALUE: Schema = {**VALUE, "type": [*VALUE["type"], "null"]}


def each(valid: Schema, what: str) -> Schema:
    """An item the server checks on its own: ``valid`` is what it accepts; anything else
    is rejected alone, reported in ``errors`` (``what``), while the request goes on. So
    the document must not refuse it: a request holding one bad item and one good one is
    answered 0 (partial success)."""
    return {"anyOf": [valid, {"description": f"anything else: {what}"}]}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


ITEM_REJECTED = "rejected alone, listed in errors by its index"
PROPERTY_REJECTED = "rejected alone (55102, or 55103 for null), listed in errors by name"
PROPERTIES: Schema = {
    "type": "object",
    "maxProperties": LIMITS.max_properties,
    "propertyNames": each({"pattern": NAME_PATTERN}, PROPERTY_REJECTED),
    "additionalProperties": each(VALUE, PROPERTY_REJECTED),
}

# Answers every endpoint can give, before its handler runs (docs/errors.md, "Order of checks").
ANY: Errors = (PathNotFound, MethodNotAllowed, HeadersTooLarge, InternalError)
# ... and every authenticated endpoint.
AUTHENTICATED: Errors = (*ANY, AuthenticationFailed, RateLimited, StorageUnavailable)
# ... and every endpoint that reads a body.
WITH_BODY: Errors = (*AUTHENTICATED, PayloadTooLarge, RequestTimeout, InvalidParameters)
# ... and every POST (Idempotency-Key).
POST: Errors = (*WITH_BODY, IdempotencyKeyReused)

HEADERS: dict[int, dict[str, Schema]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
    405: {"Allow": {"schema": {"type": "string"}, "required": True}},
    429: {
        "Retry-After": {
            "description": "seconds to wait",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
            "required": True,
        }
    },
}


def _envelope(code: Schema, *, data: Schema | None = None, errors: Schema | None = None) -> Schema:
    properties: dict[str, Schema] = {"code": code, "message": {"type": "string"}}
    required = ["code", "message"]
    if data is not None:
        properties["data"] = data
    if errors is not None:
        properties["errors"] = {"type": "array", "items": errors}
    return {"type": "object", "required": required, "properties": properties}


PROPERTY_ERROR: Schema = {
    "type": "object",
    "required": ["property", "code", "message"],
    "properties": {
        "property": {"type": "string"},
        "code": {"enum": [InvalidProperties.code, EmptyProperties.code, StaleProperty.code]},
        "message": {"type": "string"},
    },
}
IDENTITY_ERROR: Schema = {
    "type": "object",
    "required": ["index", "identity_value", "code", "message"],
    "properties": {
        "index": {"type": "integer", "minimum": 0},
        "identity_value": {"description": "the value as sent"},
        "code": {"const": InvalidParameters.code},
        "message": {"type": "string"},
    },
}
CONTACT_ERROR: Schema = {
    "type": "object",
    "required": ["contact", "code", "message"],
    "properties": {
        "contact": {"type": "string"},
        "code": {"enum": [InvalidParameters.code, InvalidProperties.code, ContactExists.code]},
        "message": {"type": "string"},
    },
}
EVENT_CODES = [
    EuidMissing.code,
    UserNotFound.code,
    InvalidParameters.code,
    InvalidProperties.code,
    EmptyProperties.code,
]
EVENT_ERROR: Schema = {
    "type": "object",
    "required": ["index", "code", "message"],
    "properties": {
        "index": {"type": "integer", "minimum": 0},
        "property": {"type": "string", "description": "the event property at fault, if any"},
        "code": {"enum": EVENT_CODES},
        "message": {"type": "string"},
    },
}
ERROR_ITEM: Schema = {"anyOf": [PROPERTY_ERROR, IDENTITY_ERROR, CONTACT_ERROR, EVENT_ERROR]}
MILLIS: Schema = {"type": "integer", "format": "int64", "description": "epoch milliseconds"}
QUERY_MILLIS: Schema = {**MILLIS, "minimum": -(10**16 - 1), "maximum": 10**16 - 1}
ITEMIZED = {400, 409}  # statuses whose answers may list rejected items in ``errors``

SEQ: Schema = {"type": "integer", "minimum": 0, "maximum": INT64_MAX, "format": "int64"}
CHANGE: Schema = {
    "type": "object",
    "required": ["seq", "euid", "property", "op", "old", "new", "source", "at"],
    "properties": {
        "seq": SEQ,
        "euid": EUID,
        "property": {"type": ["string", "null"], "description": "null for user.deleted"},
        "op": {"enum": list(CHANGE_OPS)},
        "old": NULLABLE_VALUE,
        "new": NULLABLE_VALUE,
        "source": {"type": "string", "description": "the data source's name, or cli"},
        "at": MILLIS,
    },
}


def _page_schema(**more: Schema) -> Schema:
    """A page of EUIDs: the count (computed with the first page, carried by the cursor),
    the EUIDs ascending, the cursor of the next page."""
    return {
        "type": "object",
        "required": [*more, "count", "euids", "next_cursor"],
        "properties": {
            **more,
            "count": {"type": "integer", "minimum": 0},
            "euids": {"type": "array", "items": EUID, "maxItems": SEGMENT_MAX},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


SCHEMAS: dict[str, Schema] = {
    "PropertyRequest": {
        "type": "object",
        "required": ["euid", "type", "properties"],
        "properties": {
            "euid": EUID,
            "type": {
                "enum": [op.value for op in Op],
                "description": "one operation for every property",
            },
            "properties": {**PROPERTIES, "minProperties": 1},
            "timestamp": {
                "type": ["integer", "null"],
                "format": "int64",
                "minimum": 0,
                "description": "epoch milliseconds the fact became true, at most "
                f"{MAX_AHEAD_MS // 60_000} minutes ahead of the server's clock; absent or "
                "null: now. A set or delete older than the stored value's time is not "
                f"applied (item code {StaleProperty.code}); increase, add and remove "
                "always apply",
            },
        },
    },
    "RegisterRequest": {
        "type": "object",
        "required": ["identity_name", "identity_values"],
        "properties": {
            "identity_name": {"enum": list(IDENTITY_NAMES)},
            "identity_values": {
                "type": "array",
                "minItems": 1,
                "maxItems": LIMITS.max_identity_values,
                "items": each(
                    {"type": "string", "minLength": 1, "maxLength": LIMITS.max_string_length},
                    ITEM_REJECTED,
                ),
            },
        },
    },
    "PropertySuccess": _envelope({"const": 0}, errors=PROPERTY_ERROR),
    "PropertyRead": _envelope(
        {"const": 0},
        data={
            "type": "object",
            "required": ["euid", "properties"],
            "properties": {
                "euid": EUID,
                "properties": {"type": "object", "additionalProperties": VALUE},
            },
        },
    ),
    "RegisterSuccess": _envelope(
        {"const": 0},
        data={
            "type": "array",
            "items": {
                "type": "object",
                "required": ["identity_value", "euid"],
                "properties": {"identity_value": {"type": "string"}, "euid": EUID},
            },
        },
        errors=IDENTITY_ERROR,
    ),
    "Status": _envelope({"const": 0}),
    "ContactRequest": {
        "type": "object",
        "required": ["euid", "contacts"],
        "properties": {
            "euid": EUID,
            "contacts": {
                "type": "object",
                "minProperties": 1,
                "description": '"" clears a contact',
                "propertyNames": {"enum": list(CONTACT_NAMES)},
                "additionalProperties": each(
                    {"type": "string"}, "rejected alone (55102), listed in errors by name"
                ),
            },
        },
    },
    "ContactSuccess": _envelope({"const": 0}, errors=CONTACT_ERROR),
    "ContactRead": _envelope(
        {"const": 0},
        data={
            "type": "object",
            "required": ["euid", "contacts"],
            "properties": {
                "euid": EUID,
                "contacts": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    ),
    "EventReport": {
        "type": "object",
        "required": ["data"],
        "properties": {
            "app_key": {
                "type": ["string", "null"],
                "maxLength": LIMITS.max_string_length,
                "description": 'null or "": none',
            },
            "data": {
                "type": "array",
                "minItems": 1,
                "maxItems": LIMITS.max_events,
                "items": each(_ref("Event"), ITEM_REJECTED),
            },
        },
    },
    "Event": {
        "type": "object",
        "required": ["euid", "event_name", "itime"],
        "properties": {
            "euid": EUID,
            "event_name": {"type": "string", "pattern": NAME_PATTERN},
            "itime": {**MILLIS, "minimum": 0, "maximum": MAX_ITIME},
            "random_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": LIMITS.max_string_length,
            },
            "properties": {**PROPERTIES, "type": ["object", "null"], "description": "null: none"},
        },
    },
    "EventReportSuccess": _envelope({"const": 0}, errors=EVENT_ERROR),
    "EventList": _envelope(
        {"const": 0},
        data={
            "type": "object",
            "required": ["euid", "events", "next_cursor"],
            "properties": {
                "euid": EUID,
                "events": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["event_name", "itime", "random_id", "app_key", "properties"],
                        "properties": {
                            "event_name": {"type": "string"},
                            "itime": MILLIS,
                            "random_id": {"type": ["string", "null"]},
                            "app_key": {"type": ["string", "null"]},
                            "properties": {"type": "object", "additionalProperties": VALUE},
                        },
                    },
                },
                "next_cursor": {"type": ["string", "null"]},
            },
        },
    ),
    "BatchRequest": {
        "type": "object",
        "required": ["updates"],
        "properties": {
            "updates": {
                "type": "array",
                "minItems": 1,
                "maxItems": LIMITS.max_batch,
                "description": "bodies of POST /v1/user/property, each with its own optional "
                "timestamp; a bad one is answered in its place, the others applied",
                "items": {},
            }
        },
    },
    "BatchSuccess": _envelope(
        {"const": 0},
        data={
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "code", "message"],
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "code": {"type": "integer", "description": "what the update got alone"},
                    "message": {"type": "string"},
                    "errors": {"type": "array", "items": ERROR_ITEM},
                },
            },
        },
    ),
    "Lookup": _envelope(
        {"const": 0},
        data={"type": "object", "required": ["euid"], "properties": {"euid": EUID}},
    ),
    "DeleteRequest": {"type": "object", "required": ["euid"], "properties": {"euid": EUID}},
    "History": _envelope(
        {"const": 0},
        data={
            "type": "object",
            "required": ["euid", "changes", "next_cursor"],
            "properties": {
                "euid": EUID,
                "changes": {"type": "array", "items": CHANGE},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
    ),
    "Condition": {
        "description": "a segment condition (docs/segments.md): and, or, not, or a leaf; at "
        f"most {MAX_DEPTH} levels and {MAX_LEAVES} leaves; a bad leaf is 55004 naming it",
        "anyOf": [
            {
                "type": "object",
                "required": ["and"],
                "additionalProperties": False,
                "properties": {"and": {"type": "array", "minItems": 1, "items": _ref("Condition")}},
            },
            {
                "type": "object",
                "required": ["or"],
                "additionalProperties": False,
                "properties": {"or": {"type": "array", "minItems": 1, "items": _ref("Condition")}},
            },
            {
                "type": "object",
                "required": ["not"],
                "additionalProperties": False,
                "properties": {"not": _ref("Condition")},
            },
            {
                "type": "object",
                "required": ["property", "op"],
                "additionalProperties": False,
                "properties": {
                    "property": {"type": "string", "pattern": NAME_PATTERN},
                    "op": {"enum": [op.value for op in Operator]},
                    "value": {
                        "description": "by operator: a value of the attribute's type; an "
                        "array of them (in, not_in, between [low, high], has_any, has_all); "
                        "a string (contains, starts_with, ends_with, has); a number of days "
                        "(within_last_days, more_than_days_ago); none for is_set, not_set"
                    },
                },
            },
        ],
    },
    "SegmentQuery": {
        "type": "object",
        "required": ["where"],
        "properties": {
            "where": _ref("Condition"),
            "limit": {
                "type": "integer",
                "minimum": 0,
                "maximum": SEGMENT_MAX,
                "description": "EUIDs per page (default 100); 0 counts only",
            },
            "cursor": {"type": ["string", "null"], "description": "next_cursor of a page"},
        },
    },
    "SegmentPage": _envelope({"const": 0}, data=_page_schema()),
    "SegmentRequest": {
        "type": "object",
        "required": ["name", "where"],
        "properties": {
            "name": {"type": "string", "pattern": NAME_PATTERN},
            "where": _ref("Condition"),
        },
    },
    "SegmentSaved": _envelope(
        {"const": 0},
        data={
            "type": "object",
            "required": ["name", "created", "count"],
            "properties": {
                "name": {"type": "string"},
                "created": {"type": "boolean", "description": "false: a condition replaced"},
                "count": {"type": "integer", "minimum": 0, "description": "its members"},
            },
        },
    ),
    "SegmentMembers": _envelope(
        {"const": 0},
        data=_page_schema(
            name={"type": "string"},
            complete={"type": "boolean", "description": "false while membership is built"},
        ),
    ),
    "UserSegments": _envelope(
        {"const": 0},
        data={
            "type": "object",
            "required": ["euid", "segments"],
            "properties": {
                "euid": EUID,
                "segments": {"type": "array", "items": {"type": "string"}},
            },
        },
    ),
    "Changes": _envelope(
        {"const": 0},
        data={
            "type": "object",
            "required": ["changes", "last_seq"],
            "properties": {
                "changes": {"type": "array", "items": CHANGE},
                "last_seq": SEQ,
            },
        },
    ),
}


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _answers(success: Schema, errors: Errors) -> dict[str, Schema]:
    """200 with ``success``, then one entry per HTTP status of ``errors``, its schema
    allowing exactly the codes of those errors."""
    responses: dict[str, Schema] = {"200": {"description": "code 0", "content": _json(success)}}
    by_status: dict[int, list[type[UserpropsError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    for status in sorted(by_status):
        kinds = by_status[status]
        codes = sorted({kind.code for kind in kinds})
        answer: Schema = {
            "description": "; ".join(f"{k.code}: {k.message}" for k in kinds),
            "content": _json(
                _envelope({"enum": codes}, errors=ERROR_ITEM if status in ITEMIZED else None)
            ),
        }
        if status in HEADERS:
            answer["headers"] = HEADERS[status]
        responses[str(status)] = answer
    return responses


IDEMPOTENCY_KEY: Schema = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retry safely: the same key and body get the first answer, applied once "
    "(docs/idempotency.md). Reused with another body: 42200.",
    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
}
BASIC: list[dict[str, list[str]]] = [{"basicAuth": []}]


def _post(summary: str, request: str, success: str, errors: Errors) -> Schema:
    return {
        "summary": summary,
        "security": BASIC,
        "parameters": [IDEMPOTENCY_KEY],
        "requestBody": {"required": True, "content": _json(_ref(request))},
        "responses": _answers(_ref(success), errors),
    }


def _query(name: str, schema: Schema) -> Schema:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _read(summary: str, success: str, extra: list[Schema] | None = None) -> Schema:
    """A GET of one user's data by ``euid``."""
    return {
        "summary": summary,
        "security": BASIC,
        "parameters": [
            {"name": "euid", "in": "query", "required": True, "schema": EUID},
            *(extra or []),
        ],
        "responses": _answers(
            _ref(success), (*AUTHENTICATED, EuidMissing, InvalidParameters, UserNotFound)
        ),
    }


def _paths() -> dict[str, Schema]:
    property_errors = (*POST, EuidMissing, UserNotFound, InvalidProperties, EmptyProperties)
    return {
        "/v1/user/property": {
            "post": _post(
                "Set user attributes (set, increase, add, remove, delete)",
                "PropertyRequest",
                "PropertySuccess",
                property_errors,
            ),
            "get": _read("Read back every attribute value of a user", "PropertyRead"),
        },
        "/v1/user/property/batch": {
            "post": _post(
                f"Up to {LIMITS.max_batch} property updates, each answered as alone",
                "BatchRequest",
                "BatchSuccess",
                POST,
            )
        },
        "/v1/user/register": {
            "post": _post("Get or create EUIDs", "RegisterRequest", "RegisterSuccess", POST)
        },
        "/v1/user/lookup": {
            "get": {
                "summary": "Find the user holding an identity value; nothing is created",
                "security": BASIC,
                "parameters": [
                    {
                        "name": "identity_name",
                        "in": "query",
                        "required": True,
                        "schema": {"enum": list(IDENTITY_NAMES)},
                    },
                    {
                        "name": "identity_value",
                        "in": "query",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": LIMITS.max_string_length,
                            "pattern": "^[^\\u0000]*$",
                        },
                    },
                ],
                "responses": _answers(
                    _ref("Lookup"), (*AUTHENTICATED, InvalidParameters, UserNotFound)
                ),
            }
        },
        "/v1/user/delete": {
            "post": _post(
                "Erase a user: values, identities, contacts, events, values in history",
                "DeleteRequest",
                "Status",
                (*POST, EuidMissing, UserNotFound),
            )
        },
        "/v1/user/contact": {
            "post": _post(
                'Set contact information ("" clears a contact)',
                "ContactRequest",
                "ContactSuccess",
                (*POST, EuidMissing, UserNotFound, InvalidProperties, ContactExists),
            ),
            "get": _read("Read back a user's contacts", "ContactRead"),
        },
        "/v1/event/report": {
            "post": _post(
                f"Report up to {LIMITS.max_events} events, each checked on its own",
                "EventReport",
                "EventReportSuccess",
                (*POST, EuidMissing, UserNotFound, InvalidProperties, EmptyProperties),
            )
        },
        "/v1/event/list": {
            "get": _read(
                "A user's events, newest first, with cursor pagination",
                "EventList",
                [
                    _query("from", QUERY_MILLIS),
                    _query("to", QUERY_MILLIS),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                    _query("cursor", {"type": "string"}),
                ],
            )
        },
        "/v1/user/history": {
            "get": _read(
                "A user's changes, newest first, with cursor pagination",
                "History",
                [
                    _query("property", {"type": "string", "pattern": NAME_PATTERN}),
                    _query("from", QUERY_MILLIS),
                    _query("to", QUERY_MILLIS),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": HISTORY_LIMIT}),
                    _query("cursor", {"type": "string"}),
                ],
            )
        },
        "/v1/changes": {
            "get": {
                "summary": "The project's change feed, oldest first; a long poll with wait",
                "security": BASIC,
                "parameters": [
                    _query("after", SEQ),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": FEED_MAX_LIMIT}),
                    _query("wait", {"type": "number", "minimum": 0, "maximum": MAX_WAIT}),
                ],
                "responses": _answers(_ref("Changes"), (*AUTHENTICATED, InvalidParameters)),
            }
        },
        "/v1/segment/query": {
            "post": _post(
                "Count and page the users matching a condition, EUIDs ascending",
                "SegmentQuery",
                "SegmentPage",
                POST,
            )
        },
        "/v1/segment": {
            "post": _post(
                "Create or replace a saved segment; answers once its membership is built",
                "SegmentRequest",
                "SegmentSaved",
                POST,
            )
        },
        "/v1/segment/members": {
            "get": {
                "summary": "A page of a saved segment's members, EUIDs ascending",
                "security": BASIC,
                "parameters": [
                    {
                        "name": "name",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "pattern": NAME_PATTERN},
                    },
                    _query("limit", {"type": "integer", "minimum": 0, "maximum": SEGMENT_MAX}),
                    _query("cursor", {"type": "string"}),
                ],
                "responses": _answers(_ref("SegmentMembers"), (*AUTHENTICATED, InvalidParameters)),
            }
        },
        "/v1/user/segments": {
            "get": _read("The saved segments a user is in, by name", "UserSegments")
        },
        "/metrics": {
            "get": {
                "summary": "Counters in Prometheus text format (not an envelope)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **{k: v for k, v in _answers(_ref("Status"), ANY).items() if k != "200"},
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": _answers(_ref("Status"), ANY),
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: storage reachable",
                "security": [],
                "responses": _answers(_ref("Status"), (*ANY, StorageUnavailable)),
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document (not an envelope)",
                "security": [],
                "responses": _answers({"type": "object", "required": ["openapi"]}, ANY),
            }
        },
    }


def _codes_table() -> str:
    rows = [f"| {e.code} | {e.status} | {e.message} |" for e in CODE_TABLE]
    return "\n".join(["| code | HTTP | meaning |", "| --- | --- | --- |", *rows])


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document, as a dict."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "userprops",
            "version": __version__,
            "description": "A self-hosted store of end-user attributes speaking EngageLab "
            "MA's REST API. Every answer is the envelope `{code, message, data?, errors?}`; "
            "code 0 is success or partial success.\n\n" + _codes_table(),
        },
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "base64(APIKey:APISecret) of an API data source",
                }
            },
        },
    }


@functools.cache
def document_bytes() -> bytes:
    return msgspec.json.encode(document())
