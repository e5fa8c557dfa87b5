"""Every accepted and rejected form of the five attribute types (docs/schema.md), table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, strategies as st

from userprops.config import Limits
from userprops.schema import (
    INT64_MAX,
    INT64_MIN,
    AttrType,
    Rejected,
    check_name,
    check_number,
    check_timezone,
    decode,
    encode,
    encode_raw,
    format_number,
    infer_type,
    is_empty,
    parse_number,
    parse_value,
    to_json,
)

LIMITS = Limits()
S, N, B, D, L = (
    AttrType.STRING,
    AttrType.NUMBER,
    AttrType.BOOL,
    AttrType.DATETIME,
    AttrType.LIST,
)


def parse(kind: AttrType, raw: Any, tz: Any = UTC) -> Any:
    return parse_value(kind, raw, LIMITS, tz)


ACCEPTED = [
    (S, "gold", "gold"),
    (S, "x" * 256, "x" * 256),
    (S, "日本語", "日本語"),
    (N, 0, Decimal(0)),
    (N, -5, Decimal(-5)),
    (N, 2**63 - 1, Decimal(2**63 - 1)),
    (N, -(2**63), Decimal(-(2**63))),
    (N, Decimal("46.2"), Decimal("46.2")),
    (N, Decimal("2.0"), Decimal(2)),
    (N, Decimal("1e3"), Decimal(1000)),
    (N, Decimal("0.1000"), Decimal("0.1")),
    (N, Decimal("1234567890.123456789012345678"), Decimal("1234567890.123456789012345678")),
    (B, True, True),
    (B, False, False),
    (D, "2023-12-12 00:56:23", datetime(2023, 12, 12, 0, 56, 23, tzinfo=UTC)),
    (D, "2023-12-12", datetime(2023, 12, 12, tzinfo=UTC)),
    (D, "2023-12-12T00:56:23", datetime(2023, 12, 12, 0, 56, 23, tzinfo=UTC)),
    (D, "2023-12-12T00:56:23Z", datetime(2023, 12, 12, 0, 56, 23, tzinfo=UTC)),
    (D, "2023-12-12T08:56:23+08:00", datetime(2023, 12, 12, 0, 56, 23, tzinfo=UTC)),
    (D, "2023-12-12T08:56:23+0800", datetime(2023, 12, 12, 0, 56, 23, tzinfo=UTC)),
    (D, "2023-12-12T00:56:23.5Z", datetime(2023, 12, 12, 0, 56, 23, 500000, tzinfo=UTC)),
    (D, "2023-12-12T00:56:23.123456789Z", datetime(2023, 12, 12, 0, 56, 23, 123456, tzinfo=UTC)),
    (D, 1654076420772, datetime(2022, 6, 1, 9, 40, 20, 772000, tzinfo=UTC)),
    (D, 0, datetime(1970, 1, 1, tzinfo=UTC)),
    (L, ["a", "b"], ("a", "b")),
    (L, ["b", "a", "b"], ("b", "a")),
    (L, "solo", ("solo",)),
]


@pytest.mark.parametrize(("kind", "raw", "expected"), ACCEPTED)
def test_accepted_values_parse_to_their_typed_form(kind: AttrType, raw: Any, expected: Any) -> None:
    assert parse(kind, raw) == expected


REJECTED = [
    (S, 5, "expected STRING, got number"),
    (S, True, "expected STRING, got boolean"),
    (S, ["a"], "expected STRING, got array"),
    (S, "x" * 257, "longer than 256"),
    (S, "a\x00b", "U+0000"),
    (S, "\ud800", "lone surrogate"),
    (N, "5", "expected NUMBER, got string"),
    (N, True, "expected NUMBER, got boolean"),
    (N, 2**63, "outside signed 64 bits"),
    (N, -(2**63) - 1, "outside signed 64 bits"),
    (N, 2**70, "outside signed 64 bits"),
    (N, Decimal("1e400"), "outside signed 64 bits"),
    (N, Decimal("1e-400"), "fractional digits"),
    (N, Decimal("0.12345678901234567890123456789"), "significant digits"),
    (N, Decimal("NaN"), "finite"),
    (N, Decimal("Infinity"), "finite"),
    (B, 1, "expected BOOL, got number"),
    (B, "true", "expected BOOL, got string"),
    (D, "2023-13-01", "invalid DATETIME"),
    (D, "2023-02-30 00:00:00", "invalid DATETIME"),
    (D, "12/12/2023", "expected DATETIME"),
    (D, "2023-12-12T25:00:00", "invalid DATETIME"),
    (D, "20231212", "expected DATETIME"),
    (D, True, "expected DATETIME, got boolean"),
    (D, Decimal("1.5"), "expected DATETIME, got number"),
    (D, 10**20, "out of range"),
    (L, [1], "element 0 is number"),
    (L, ["a", ""], "element 1 must not be empty"),
    (L, ["x" * 257], "longer than 256"),
    (L, [str(i) for i in range(501)], "longer than 500"),
    (L, {"a": 1}, "expected LIST"),
]


@pytest.mark.parametrize(("kind", "raw", "reason"), REJECTED)
def test_rejected_values_say_why(kind: AttrType, raw: Any, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse(kind, raw)
    assert reason in caught.value.reason
    assert not caught.value.empty


@pytest.mark.parametrize("kind", list(AttrType))
@pytest.mark.parametrize("raw", [None, "", []])
def test_empty_values_are_rejected_as_empty_for_every_type(kind: AttrType, raw: Any) -> None:
    assert is_empty(raw)
    with pytest.raises(Rejected) as caught:
        parse(kind, raw)
    assert caught.value.empty


@pytest.mark.parametrize("raw", [0, False, " ", ["a"], {}])
def test_non_empty_values_are_not_empty(raw: Any) -> None:
    assert not is_empty(raw)


def test_datetime_without_offset_is_read_in_the_project_time_zone() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    parsed = parse(D, "2023-12-12 08:00:00", shanghai)
    assert parsed == datetime(2023, 12, 12, 0, 0, tzinfo=UTC)
    assert to_json(D, parsed, shanghai) == "2023-12-12T08:00:00+08:00"


def test_datetime_with_offset_ignores_the_project_time_zone() -> None:
    parsed = parse(D, "2023-12-12T00:00:00Z", ZoneInfo("Asia/Shanghai"))
    assert parsed == datetime(2023, 12, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("plan", True),
        ("a", True),
        ("user_number_once", True),
        ("a1_b2", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("Plan", False),
        ("1plan", False),
        ("_plan", False),
        ("plan-type", False),
        ("plan type", False),
        ("", False),
        ("plän", False),
    ],
)
def test_attribute_name_rule(name: str, ok: bool) -> None:
    if ok:
        check_name(name)
    else:
        with pytest.raises(Rejected):
            check_name(name)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (True, B),
        (3, N),
        (Decimal("1.5"), N),
        (["a"], L),
        ("gold", S),
        ("2023-12-12 00:56:23", D),
        ("2023-12-12T00:56:23Z", D),
        ("2023-12-12", S),  # no time part: a plain string
        ({"a": 1}, None),
    ],
)
def test_type_inference_from_the_first_value(raw: Any, kind: AttrType | None) -> None:
    assert infer_type(raw) is kind


@pytest.mark.parametrize("text", ["number", "NUMBER", "Number", "list", "Datetime"])
def test_attribute_type_names_are_case_insensitive(text: str) -> None:
    assert AttrType.parse(text).value == text.upper()


def test_unknown_attribute_type_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="STRING, NUMBER, BOOL, DATETIME, LIST"):
        AttrType.parse("INT")


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (S, "gold"),
        (N, Decimal("12")),
        (N, Decimal("-0.5")),
        (B, True),
        (B, False),
        (D, datetime(2023, 1, 2, 3, 4, 5, 6, tzinfo=UTC)),
        (L, ("a", "b")),
    ],
)
def test_stored_form_round_trips(kind: AttrType, value: Any) -> None:
    assert decode(kind, encode(kind, value)) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("2.0"), "2"),
        (Decimal("1E+3"), "1000"),
        (Decimal("0.10"), "0.1"),
        (Decimal("-1.50"), "-1.5"),
        (Decimal("1E-7"), "0.0000001"),
    ],
)
def test_numbers_are_read_back_in_their_shortest_exact_form(value: Decimal, text: str) -> None:
    assert format_number(value) == text


def test_read_back_forms() -> None:
    assert to_json(N, Decimal("2.0"), UTC) == 2
    assert isinstance(to_json(N, Decimal("2.0"), UTC), int)
    assert to_json(N, Decimal("1.10"), UTC) == Decimal("1.1")
    assert to_json(L, ("a",), UTC) == ["a"]
    moment = datetime(2023, 1, 1, tzinfo=UTC)
    assert to_json(D, moment, UTC) == "2023-01-01T00:00:00+00:00"
    assert to_json(D, moment + timedelta(microseconds=5), UTC) == (
        "2023-01-01T00:00:00.000005+00:00"
    )


def test_time_zone_names_are_checked() -> None:
    assert check_timezone("Europe/Paris") == ZoneInfo("Europe/Paris")
    with pytest.raises(ValueError, match="unknown time zone"):
        check_timezone("Mars/Olympus")


@given(st.integers(INT64_MIN - 5, INT64_MAX + 5))
def test_an_integer_parses_as_the_general_number_check_reads_it(raw: int) -> None:
    try:
        expected = check_number(Decimal(raw))
    except Rejected as reason:
        with pytest.raises(Rejected, match=reason.reason):
            parse_number(raw)
        return
    parsed = parse_number(raw)
    assert parsed == expected
    assert str(parsed) == str(expected)


_RAW = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT64_MIN - 3, INT64_MAX + 3),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.text(max_size=12),
    st.sampled_from(["2026-11-29 12:03:04", "2026-11-29", "2026-02-30 00:00:00", "x" * 300]),
    st.lists(st.text(max_size=3), max_size=3),
)


@given(kind=st.sampled_from(list(AttrType)), raw=_RAW)
def test_stored_text_is_the_encoded_parsed_value(kind: AttrType, raw: Any) -> None:
    """The write path's shortcut gives what the general path gives, or the same refusal."""
    tz = ZoneInfo("Asia/Tokyo")
    try:
        expected: Any = encode(kind, parse_value(kind, raw, LIMITS, tz))
    except Rejected as reason:
        expected = (reason.reason, reason.empty)
    try:
        actual: Any = encode_raw(kind, raw, LIMITS, tz)
    except Rejected as reason:
        actual = (reason.reason, reason.empty)
    assert actual == expected
