"""Attribute types, name rules, value parsing and type inference (docs/schema.md).

Pure: no I/O. :func:`parse_value` turns a raw JSON value (as decoded with decimals for
non-integral numbers) into a typed value or raises :class:`Rejected` with a reason.

Typed values: STRING ``str``, NUMBER ``Decimal`` (exact), BOOL ``bool``, DATETIME an aware
``datetime`` in UTC, LIST a ``tuple[str, ...]`` without duplicates, first occurrence first.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Context, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from userprops.config import Limits
from userprops.errors import EmptyProperties, InvalidProperties

NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
MAX_NAME_LENGTH = 128
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_SIGNIFICANT_DIGITS = 28
MAX_FRACTION_DIGITS = 28
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# DATETIME's range, in UTC: one day inside what Python's datetime holds at either end, so
# every accepted value has a local form in every time zone (an offset is under a day).
DATETIME_MIN = datetime(1, 1, 2, tzinfo=UTC)
DATETIME_MAX = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)

# Wide enough that adding two valid NUMBERs is always exact; results are then checked.
EXACT = Context(prec=80)

_DATETIME_RE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:(?P<sep>[T ])(?P<time>\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?)?"
)

Typed = str | Decimal | bool | datetime | tuple[str, ...]


class AttrType(enum.StrEnum):
    STRING = "STRING"
    NUMBER = "NUMBER"
    BOOL = "BOOL"
    DATETIME = "DATETIME"
    LIST = "LIST"

    @classmethod
    def parse(cls, text: str) -> AttrType:
        """Any case: ``number`` and ``NUMBER`` are the same type."""
        try:
            return cls(text.upper())
        except ValueError:
            choices = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown attribute type {text!r}; one of {choices}") from None


class SchemaMode(enum.StrEnum):
    AUTO = "auto"
    STRICT = "strict"


class Rejected(Exception):
    """A value or name that cannot be accepted; ``empty`` marks the 55103 case, ``name``
    the property at fault where the raiser knows it."""

    def __init__(self, reason: str, *, empty: bool = False, name: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.empty = empty
        self.name = name

    @property
    def code(self) -> int:
        """The item code: 55103 for an empty value, else 55102."""
        return EmptyProperties.code if self.empty else InvalidProperties.code


def check_name(name: str) -> None:
    """Attribute (and event) names: ``^[a-z][a-z0-9_]*$``, 1 to 128 characters."""
    if len(name) > MAX_NAME_LENGTH:
        raise Rejected(f"name longer than {MAX_NAME_LENGTH} characters")
    if not NAME_RE.fullmatch(name):
        raise Rejected("name must match ^[a-z][a-z0-9_]*$")


def is_empty(raw: Any) -> bool:
    """``null``, ``""`` and ``[]`` are empty values (55103)."""
    return raw is None or raw == "" or (isinstance(raw, list) and not raw)


def check_timezone(name: str) -> tzinfo:
    """An IANA time zone name (``UTC``, ``Asia/Shanghai``); raises ValueError otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _kind(raw: Any) -> str:
    if isinstance(raw, bool):
        return "boolean"
    if isinstance(raw, int | Decimal):
        return "number"
    if isinstance(raw, str):
        return "string"
    if isinstance(raw, list):
        return "array"
    if isinstance(raw, dict):
        return "object"
    return "null"


def checked_text(raw: Any, limits: Limits, what: str) -> str:
    """A string of 1 to ``max_string_length`` characters that every backend stores as is
    (no U+0000, no lone surrogate), or :class:`Rejected` naming ``what``."""
    if not isinstance(raw, str):
        raise Rejected(f"{what} must be a string")
    return _check_text(raw, limits, what)


def _check_text(text: str, limits: Limits, what: str) -> str:
    if not text:
        raise Rejected(f"{what} must not be empty")
    if len(text) > limits.max_string_length:
        raise Rejected(f"{what} longer than {limits.max_string_length} characters")
    if "\x00" in text:
        raise Rejected(f"{what} contains U+0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected(f"{what} contains a lone surrogate") from None
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_json(encoder: msgspec.json.Encoder, value: Any) -> bytes:
    """``value`` as JSON, every lone surrogate in its strings (keys too) replaced by U+FFFD:
    a rejected item is echoed back as sent, and JSON cannot carry a lone surrogate."""
    try:
        return encoder.encode(value)
    except UnicodeEncodeError:
        return encoder.encode(
            _replace_surrogates(msgspec.to_builtins(value, builtin_types=(Decimal,)))
        )


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_surrogates(v) for v in value]
    return value


def parse_number(raw: Any) -> Decimal:
    """An integer within int64 or a finite decimal of at most 28 significant digits.

    An integral value, however written (``2``, ``2.0``, ``2e0``), must fit in int64; a
    non-integral one may have at most 28 significant and 28 fractional digits.
    """
    if type(raw) is int and INT64_MIN <= raw <= INT64_MAX:
        return Decimal(raw)  # what check_number gives an int64, without its arithmetic
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal):
        raise Rejected(f"expected NUMBER, got {_kind(raw)}")
    return check_number(Decimal(raw))


def check_number(value: Decimal) -> Decimal:
    """Bounds of NUMBER (see :func:`parse_number`); returns the canonical value, equal to
    ``value``: a value is accepted exactly or rejected, never rounded. Works on the digits
    themselves, with no context, so a literal of any length or exponent costs little."""
    if not value.is_finite():  # NaN: also a literal the decoder could not hold (wire.py)
        raise Rejected("number out of range (not a finite decimal)")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    end = len(digits)
    while end > 1 and digits[end - 1] == 0:  # trailing zeros only scale the value
        end -= 1
    exponent += len(digits) - end
    digits = digits[:end]
    if digits == (0,):
        return Decimal(0)
    if exponent >= 0:
        if len(digits) + exponent > 19:
            raise Rejected("integer outside signed 64 bits")
        integer = int(Decimal((sign, digits, exponent)))
        if not INT64_MIN <= integer <= INT64_MAX:
            raise Rejected("integer outside signed 64 bits")
        return Decimal(integer)
    canonical = Decimal((sign, digits, exponent))
    if len(digits) + exponent > 19 or abs(canonical) > INT64_MAX:
        raise Rejected("number out of range")
    if len(digits) > MAX_SIGNIFICANT_DIGITS:
        raise Rejected(f"decimal with more than {MAX_SIGNIFICANT_DIGITS} significant digits")
    if -exponent > MAX_FRACTION_DIGITS:
        raise Rejected(f"decimal with more than {MAX_FRACTION_DIGITS} fractional digits")
    return canonical


def parse_datetime(raw: Any, tz: tzinfo, *, require_time: bool = False) -> datetime:
    """DATETIME forms: ``YYYY-MM-DD HH:MM:SS``, ``YYYY-MM-DD``, ISO 8601 with ``T``,
    optional fraction (kept to microseconds) and ``Z``/offset, or epoch milliseconds.

    A value without an offset is read in ``tz``. The result is in UTC, from
    :data:`DATETIME_MIN` to :data:`DATETIME_MAX`.
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        try:
            return _in_range(EPOCH + timedelta(milliseconds=raw))
        except OverflowError:
            raise Rejected(_OUT_OF_RANGE) from None
    if not isinstance(raw, str):
        raise Rejected(f"expected DATETIME, got {_kind(raw)}")
    m = _DATETIME_RE.fullmatch(raw)
    if m is None or (require_time and m["time"] is None):
        raise Rejected("expected DATETIME as YYYY-MM-DD HH:MM:SS, ISO 8601 or epoch ms")
    text = m["date"]
    if m["time"]:
        text += "T" + m["time"]
        if m["frac"]:
            text += "." + m["frac"][:6].ljust(6, "0")
    if m["tz"]:
        text += "+00:00" if m["tz"] == "Z" else m["tz"]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise Rejected(f"invalid DATETIME: {exc}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    try:
        return _in_range(parsed.astimezone(UTC))
    except OverflowError:
        raise Rejected(_OUT_OF_RANGE) from None


_MINUTE = timedelta(minutes=1)
_OUT_OF_RANGE = "DATETIME out of range (0001-01-02T00:00:00Z to 9999-12-30T23:59:59.999999Z)"


def _in_range(value: datetime) -> datetime:
    if not DATETIME_MIN <= value <= DATETIME_MAX:
        raise Rejected(_OUT_OF_RANGE)
    return value


def parse_list(raw: Any, limits: Limits, *, allow_scalar: bool) -> tuple[str, ...]:
    """An array of strings (or one string where ``allow_scalar``), deduplicated."""
    if isinstance(raw, str) and allow_scalar:
        raw = [raw]
    if not isinstance(raw, list):
        raise Rejected(f"expected LIST (array of strings), got {_kind(raw)}")
    if len(raw) > limits.max_list_length:
        raise Rejected(f"list longer than {limits.max_list_length} elements")
    seen: dict[str, None] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            raise Rejected(f"list element {i} is {_kind(item)}, expected string")
        seen[_check_text(item, limits, f"list element {i}")] = None
    return tuple(seen)


def parse_value(
    kind: AttrType, raw: Any, limits: Limits, tz: tzinfo, *, list_scalar: bool = True
) -> Typed:
    """Turn a raw JSON value into a typed value of ``kind``, or raise :class:`Rejected`.

    Empty values (:func:`is_empty`) are rejected with ``empty=True``.
    """
    if is_empty(raw):
        raise Rejected("value is empty", empty=True)
    if kind is AttrType.STRING:
        if not isinstance(raw, str):
            raise Rejected(f"expected STRING, got {_kind(raw)}")
        return _check_text(raw, limits, "string")
    if kind is AttrType.NUMBER:
        return parse_number(raw)
    if kind is AttrType.BOOL:
        if not isinstance(raw, bool):
            raise Rejected(f"expected BOOL, got {_kind(raw)}")
        return raw
    if kind is AttrType.DATETIME:
        return parse_datetime(raw, tz)
    return parse_list(raw, limits, allow_scalar=list_scalar)


def encode_raw(kind: AttrType, raw: Any, limits: Limits, tz: tzinfo) -> str:
    """``encode(kind, parse_value(kind, raw, limits, tz))``, the stored text of a raw
    value, without the typed value in between for the common STRING and int cases."""
    if type(raw) is str and raw and kind is AttrType.STRING:
        return _check_text(raw, limits, "string")
    if type(raw) is int and kind is AttrType.NUMBER and INT64_MIN <= raw <= INT64_MAX:
        return str(raw)
    return encode(kind, parse_value(kind, raw, limits, tz))


def infer_type(raw: Any) -> AttrType | None:
    """The type an undefined attribute gets from its first value in ``auto`` mode.

    boolean → BOOL, number → NUMBER, array → LIST, a string in a DATETIME form with a
    time part → DATETIME, any other string → STRING; None when nothing fits (an object).
    """
    if isinstance(raw, bool):
        return AttrType.BOOL
    if isinstance(raw, int | Decimal):
        return AttrType.NUMBER
    if isinstance(raw, list):
        return AttrType.LIST
    if isinstance(raw, str):
        m = _DATETIME_RE.fullmatch(raw)
        return AttrType.DATETIME if m is not None and m["time"] else AttrType.STRING
    return None


# Storage form: one TEXT per value, the same on every backend.


def encode(kind: AttrType, value: Typed) -> str:
    """The stored text of a typed value."""
    if kind is AttrType.NUMBER:
        assert isinstance(value, Decimal)
        return format_number(value)
    if kind is AttrType.BOOL:
        return "true" if value else "false"
    if kind is AttrType.DATETIME:
        assert isinstance(value, datetime)
        return value.astimezone(UTC).isoformat()
    if kind is AttrType.LIST:
        assert isinstance(value, tuple)
        return msgspec.json.encode(list(value)).decode()
    assert isinstance(value, str)
    return value


def decode(kind: AttrType, text: str) -> Typed:
    """The typed value of a stored text; inverse of :func:`encode`."""
    if kind is AttrType.NUMBER:
        return Decimal(text)
    if kind is AttrType.BOOL:
        return text == "true"
    if kind is AttrType.DATETIME:
        return datetime.fromisoformat(text)
    if kind is AttrType.LIST:
        return tuple(msgspec.json.decode(text, type=list[str]))
    return text


def format_number(value: Decimal) -> str:
    """Shortest exact form: integral values as integers, others in plain notation."""
    if value == value.to_integral_value(context=EXACT):
        return str(int(value))
    return format(value.normalize(context=EXACT), "f")


def to_json(kind: AttrType, value: Typed, tz: tzinfo) -> Any:
    """The JSON form a value is read back in (docs/http-api.md, reading back)."""
    if kind is AttrType.NUMBER:
        assert isinstance(value, Decimal)
        text = format_number(value)
        return int(text) if "." not in text else Decimal(text)
    if kind is AttrType.DATETIME:
        assert isinstance(value, datetime)
        try:
            local = value.astimezone(tz)
        except (OverflowError, ValueError):  # stored before DATETIME had its range
            return value.astimezone(UTC).isoformat()
        if local.utcoffset() % _MINUTE:  # type: ignore[operator]
            # A local mean time of long ago (+00:19:32): ISO 8601 has no seconds in offsets.
            return value.astimezone(UTC).isoformat()
        return local.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def read_back(kind: str, text: str, tz: tzinfo) -> Any:
    """The JSON form of a stored text of type ``kind``; never raises. A text that does not
    decode as its type (written by something other than this service) reads back as the
    text itself, so one bad value cannot make a user or an event list unreadable."""
    try:
        kind = AttrType(kind)
        return to_json(kind, decode(kind, text), tz)
    except Exception:
        return text
