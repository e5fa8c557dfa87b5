"""The client's JSON: exact numbers both ways, and refusals before anything is sent."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from userprops_client._json import dumps, loads

pytestmark = pytest.mark.unit  # no server: the client's pure parts


def test_values_beyond_json_are_sent_in_the_forms_the_server_reads() -> None:
    sent = dumps(
        {
            "n": Decimal("0.1"),
            "big": Decimal("1E+2"),
            "f": 0.5,
            "i": 7,
            "b": True,
            "none": None,
            "at": datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
            "day": date(2024, 5, 1),
            "tags": ("a", "b"),
            "one": frozenset({"x"}),
            "text": "héllo \u2028",
        }
    )
    assert sent == (
        b'{"n":0.1,"big":1E+2,"f":0.5,"i":7,"b":true,"none":null,'
        b'"at":"2024-05-01T12:30:00+00:00","day":"2024-05-01","tags":["a","b"],'
        b'"one":["x"],"text":"h\\u00e9llo \\u2028"}'
    )
    assert json.loads(sent)["text"] == "héllo \u2028"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (float("nan"), ValueError),
        (Decimal("Infinity"), ValueError),
        (Decimal("NaN"), ValueError),
        ({1: "a"}, TypeError),
        (object(), TypeError),
        (b"bytes", TypeError),
    ],
)
def test_what_json_cannot_carry_is_refused(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        dumps({"v": value})


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_a_decimal_goes_out_and_comes_back_exactly(value: Decimal) -> None:
    back = loads(dumps([value]))[0]
    assert back == value
    assert isinstance(back, int | Decimal)
