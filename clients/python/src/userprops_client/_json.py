"""JSON in and out, with exact numbers.

userprops adds decimals exactly (0.1 + 0.2 is 0.3), so a decimal read back is a
:class:`~decimal.Decimal`, never a float, and a ``Decimal`` sent goes out digit for digit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

_scalar = json.JSONEncoder(ensure_ascii=True, allow_nan=False).encode


def dumps(value: object) -> bytes:
    """Compact JSON of ``value``. Beyond JSON's own types: ``Decimal`` as a number written
    as it is, ``datetime``/``date`` as ISO 8601 strings, tuples, sets and frozensets as
    arrays (in iteration order). ``ValueError`` for NaN or infinity, ``TypeError`` for
    anything else, before anything is sent."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts).encode("ascii")


def _encode(value: object, out: list[str]) -> None:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be sent as a JSON number")
        out.append(str(value))
    elif value is None or isinstance(value, str | int | float):  # bool is an int
        out.append(_scalar(value))
    elif isinstance(value, datetime | date):
        out.append(_scalar(value.isoformat()))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            out.append("," if i else "")
            out.append(_scalar(key) + ":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple | set | frozenset):
        out.append("[")
        for i, item in enumerate(value):
            out.append("," if i else "")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} cannot be sent as JSON")


def loads(data: bytes | str) -> Any:
    """Parse JSON; decimals become ``Decimal``, integers stay ``int``."""
    return json.loads(data, parse_float=Decimal)
