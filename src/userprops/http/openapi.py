"""The published contract: an OpenAPI 3.1 document of every endpoint (docs/http-api.md).

Built from the error table, so every code appears with its HTTP status. Tests keep it
true: every route in :data:`userprops.http.routes.ROUTES` is documented and nothing else, every
code of :data:`userprops.errors.CODE_TABLE` appears, and schemathesis fuzzes the running
app against it (tests/test_openapi.py).

To document a new endpoint (contacts, events, metrics): add its request and answer
schemas below, then its entry to :func:`_paths` with the error classes it can answer.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from userprops import __version__
from userprops.config import Limits
from userprops.contacts import CONTACT_NAMES
from userprops.errors import (
    CODE_TABLE,
    AuthenticationFailed,
    Conflict,
    ContactExists,
    DataSourceNotFound,
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
    StorageUnavailable,
    UserNotFound,
    UserpropsError,
)
from userprops.eventlist import MAX_LIMIT
from userprops.events import MAX_ITIME
from userprops.http.wire import IDENTITY_NAMES
from userprops.operations import Op
from userprops.schema import INT64_MAX, MAX_NAME_LENGTH

Schema = dict[str, Any]
LIMITS = Limits()  # the defaults; a server configured otherwise documents these
NAME_PATTERN = f"^[a-z][a-z0-9_]{{0,{MAX_NAME_LENGTH - 1}}}$"
Errors = tuple[type[UserpropsError], ...]

# Codes no HTTP endpoint answers: the command line's.
NOT_OVER_HTTP: Errors = (ProjectNotFound, DataSourceNotFound, Conflict)

EUID: Schema = {"type": "integer", "minimum": 1, "maximum": INT64_MAX, "format": "int64"}
VALUE: Schema = {
    "description": "STRING, NUMBER, BOOL, DATETIME (a string or epoch milliseconds) or LIST",
    "type": ["string", "number", "boolean", "array"],
    "items": {"type": "string"},
}


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
        "code": {"enum": [InvalidProperties.code, EmptyProperties.code]},
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
        "/v1/user/register": {
            "post": _post("Get or create EUIDs", "RegisterRequest", "RegisterSuccess", POST)
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
                    {"name": "from", "in": "query", "required": False, "schema": QUERY_MILLIS},
                    {"name": "to", "in": "query", "required": False, "schema": QUERY_MILLIS},
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
            )
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
