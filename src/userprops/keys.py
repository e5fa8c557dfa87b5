"""Sort keys: each stored value's ``user_values.sort_key``, the indexed column that segment
queries compare (docs/segments.md, "How conditions run").

Pure. A key is text that orders like the value it stands for, byte by byte, on both
backends (SQLite's BINARY collation, PostgreSQL's ``COLLATE "C"``), so one B-tree index
serves equality, ranges and prefixes of every scalar type, and comparisons stay exact:

- NUMBER: an order-preserving text form of the exact decimal (:func:`number_key`), never a
  float;
- DATETIME: the instant as epoch microseconds, in the same form;
- STRING: the string itself, cut to :data:`STRING_KEY_CHARS` characters (a longer string
  shares its key with others of the same beginning, so comparisons recheck ``value``);
- BOOL: ``true`` or ``false``;
- LIST: none; its elements are rows of ``user_list_items`` instead.

The SQL of the migration that fills the column for existing rows computes the same keys
(tests/unit/test_segment_keys.py checks both against this module).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from userprops.schema import EPOCH, AttrType, format_number

STRING_KEY_CHARS = 200
"""The longest STRING key: 200 characters, at most 800 bytes, well inside PostgreSQL's
B-tree entry limit (about 2,700 bytes) whatever ``max_string_length`` allows."""

_MAX_WHOLE_DIGITS = 19  # |NUMBER| <= 2**63, and epoch microseconds of years 1 to 9999
_COMPLEMENT = str.maketrans("0123456789", "9876543210")
_MICROSECOND = timedelta(microseconds=1)


def number_key(text: str) -> str:
    """The key of a NUMBER in its canonical text (:func:`userprops.schema.format_number`:
    no exponent, no leading or trailing zeros, ``0`` for zero).

    Non-negative: ``P``, one letter for the count of whole digits (``A`` for none), the
    whole digits, the fraction digits. Negative: ``N``, the letter counted down from ``T``,
    every digit complemented (9 - d), then ``~``, which sorts after every digit, so that a
    longer fraction (a smaller number) sorts first. ``-10 < -5 < -0.5 < 0 < 0.05 < 0.5 <
    5 < 10`` become ``NR89~ < NS4~ < NT4~ < PA < PA05 < PA5 < PB5 < PC10``.
    """
    negative = text.startswith("-")
    whole, _, fraction = (text[1:] if negative else text).partition(".")
    if whole == "0":
        whole = ""
    if len(whole) > _MAX_WHOLE_DIGITS:
        raise ValueError(f"number out of range: {text}")
    if negative:
        digits = (whole + fraction).translate(_COMPLEMENT)
        return f"N{chr(0x41 + _MAX_WHOLE_DIGITS - len(whole))}{digits}~"
    return f"P{chr(0x41 + len(whole))}{whole}{fraction}"


def decimal_key(value: Decimal) -> str:
    """The key of an exact decimal (a parsed NUMBER)."""
    return number_key(format_number(value))


def epoch_micros(value: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch (values carry no finer part)."""
    return (value - EPOCH) // _MICROSECOND


def datetime_key(value: datetime) -> str:
    """The key of an instant: its epoch microseconds as a NUMBER key."""
    return number_key(str(epoch_micros(value)))


def string_key(text: str) -> str:
    """The key of a STRING: its first :data:`STRING_KEY_CHARS` characters."""
    return text[:STRING_KEY_CHARS]


def sort_key(kind: AttrType, text: str) -> str | None:
    """The key of a stored value (its type and stored text); None for a LIST."""
    if kind is AttrType.STRING:
        return text[:STRING_KEY_CHARS]
    if kind is AttrType.NUMBER:
        return number_key(text)
    if kind is AttrType.DATETIME:
        return datetime_key(datetime.fromisoformat(text))
    if kind is AttrType.BOOL:
        return text
    return None
