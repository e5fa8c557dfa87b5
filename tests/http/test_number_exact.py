"""A NUMBER is stored exactly or rejected for its property, never changed (docs/schema.md).

``1.`` followed by 100 zeros and ``1`` had been stored as ``1`` with code 0 (a rounding to
80 digits while checking it), ``1e-999999999`` as ``0``; an integer literal of more than
4,300 digits made the whole body 55004, and one with an exponent past what Decimal holds
a 500."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from tests.support.api import Api
from userprops.http.wire import decode_object
from userprops.schema import INT64_MAX, INT64_MIN, Rejected, parse_number


def number_of(literal: str) -> Decimal:
    """The value of ``literal`` as the API reads it: decoded from a body, then checked."""
    return parse_number(decode_object(b'{"v": ' + literal.encode() + b"}")["v"])


literals = st.builds(
    lambda sign, whole, fraction, exponent: sign + whole + fraction + exponent,
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,120}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,120}", fullmatch=True)),
    st.one_of(
        st.just(""),
        st.builds(
            lambda e, n: f"{e}{n}",
            st.sampled_from(["e", "E", "e+", "e-"]),
            st.integers(0, 10**6),
        ),
    ),
)


@settings(max_examples=500)
@given(literals)
def test_a_number_is_accepted_exactly_or_rejected(literal: str) -> None:
    try:
        value = number_of(literal)
    except Rejected:
        return
    assert value == Decimal(literal)


@settings(max_examples=200)
@given(st.integers(min_value=-(10**6000), max_value=10**6000))
def test_an_integer_of_any_length_is_accepted_within_int64_else_rejected_alone(
    integer: int,
) -> None:
    literal = str(integer) if abs(integer) < 10**4000 else format(Decimal(integer), "f")
    if INT64_MIN <= integer <= INT64_MAX:
        assert number_of(literal) == integer
    else:
        with pytest.raises(Rejected, match="64 bits"):
            number_of(literal)


@pytest.mark.parametrize(
    "literal",
    [
        "1." + "0" * 100 + "1",
        "1." + "0" * 27 + "1",
        "1e-999999999",
        "9e99999999999999999999",
        "-9e-99999999999999999999",
        "9" * 5000,
        "-" + "9" * 5000,
        "1" + "0" * 1_000_000 + ".5",
    ],
)
def test_literals_that_used_to_change_or_fail_the_body_are_rejected(literal: str) -> None:
    with pytest.raises(Rejected):
        number_of(literal)


async def test_an_unstorable_number_is_rejected_for_its_property_alone(api: Api) -> None:
    (euid,) = await api.register("exact")
    body = (
        b'{"euid": %d, "type": "set", "properties": {"long": 1.%s1, "huge": %s, "far": 9e%s,'
        b' "ok": 1.5}}' % (euid, b"0" * 100, b"9" * 5000, b"9" * 20)
    )
    r = await api.http.post("/v1/user/property", content=body, headers=api.auth_header)
    assert r.json()["code"] == 0, r.text
    assert sorted((e["property"], e["code"]) for e in r.json()["errors"]) == [
        ("far", 55102),
        ("huge", 55102),
        ("long", 55102),
    ]
    assert await api.props(euid) == {"ok": Decimal("1.5")}


async def test_an_unstorable_number_in_an_event_rejects_that_event(api: Api) -> None:
    (euid,) = await api.register("exact-event")
    body = (
        b'{"data": [{"euid": %d, "event_name": "e", "itime": 1, "properties": {"n": 1.%s1}},'
        b' {"euid": %d, "event_name": "e", "itime": 2, "properties": {"n": 2}}]}'
        % (euid, b"0" * 100, euid)
    )
    r = await api.http.post("/v1/event/report", content=body, headers=api.auth_header)
    assert r.json()["code"] == 0, r.text
    assert [(e["index"], e["code"]) for e in r.json()["errors"]] == [(0, 55102)]
