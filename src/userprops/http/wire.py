"""Request bodies off the wire: JSON decoding and the shape checks of spec §2 to §4.

Checks run in the order spec §2 fixes (first failure wins): body is a JSON object
(55004), ``euid`` present (40007), ``euid`` an integer in range (55004), then the other
fields (55004). Per-item checks belong to the engine.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import msgspec

from userprops.config import Limits
from userprops.errors import EuidMissing, InvalidParameters
from userprops.operations import Op
from userprops.schema import INT64_MAX

# Non-integral numbers become Decimal, so arithmetic stays exact.
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
IDENTITY_NAMES = ("user_id", "anonymous_id", "registration_id")
_DIGITS = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class PropertyRequest:
    euid: int
    op: Op
    properties: dict[str, Any]


@dataclass(frozen=True)
class RegisterRequest:
    identity_name: str
    identity_values: list[Any]


_OPS = {op.value: op for op in Op}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode_slowly(body: bytes) -> Any:
    """The standard library's reading of what msgspec refused. It differs only on escaped
    lone surrogates (``"\\ud800"``), which JSON's grammar allows: they decode here, so the
    property holding one is rejected on its own (55102) rather than the whole body."""
    try:
        text = body.decode("utf-8")
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
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
    obj = decode_object(body)
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
    return PropertyRequest(euid, op, properties)


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


def parse_euid_query(query_string: bytes) -> int:
    """``euid`` of a query string: 40007 when absent or empty, 55004 when not in range."""
    try:
        params = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        raise InvalidParameters("malformed query string") from None
    raw = params.get("euid", [""])[0]
    if raw == "":
        raise EuidMissing()
    if not _DIGITS.fullmatch(raw):
        raise InvalidParameters("euid must be an integer from 1 to 9223372036854775807")
    return check_euid(int(raw))
