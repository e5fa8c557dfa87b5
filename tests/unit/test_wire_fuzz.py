"""Property-based tests of the decoders in userprops.http.wire: whatever the bytes, the answer
is a parsed request that keeps its invariants or a documented error, never anything else."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, strategies as st

from userprops.clock import now_ms
from userprops.config import Limits
from userprops.errors import EuidMissing, InvalidParameters
from userprops.http.wire import (
    check_euid,
    decode_object,
    parse_euid_query,
    parse_property_request,
    parse_register_request,
)
from userprops.operations import Op
from userprops.properties import MAX_AHEAD_MS
from userprops.schema import INT64_MAX
from userprops.users import IDENTITY_NAMES

LIMITS = Limits()
DOCUMENTED = (EuidMissing, InvalidParameters)
ABSENT = object()  # a field left out of the body

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
euids = st.one_of(
    st.integers(min_value=1, max_value=INT64_MAX),
    st.integers(),
    st.none(),
    st.just(""),
    st.booleans(),
    st.text(max_size=5),
    st.floats(allow_nan=False),
)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


@given(st.binary(max_size=200))
def test_any_bytes_decode_to_an_object_or_55004(raw: bytes) -> None:
    try:
        assert isinstance(decode_object(raw), dict)
    except InvalidParameters:
        pass


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_a_json_object_decodes_to_itself_with_exact_decimals(obj: dict[str, Any]) -> None:
    decoded = decode_object(encode(obj))
    assert decoded == json.loads(encode(obj), parse_float=Decimal)


@given(json_values.filter(lambda v: not isinstance(v, dict)))
def test_anything_but_an_object_is_55004(value: Any) -> None:
    with pytest.raises(InvalidParameters):
        decode_object(encode(value))


@given(st.integers(min_value=1, max_value=INT64_MAX))
def test_every_int64_euid_is_accepted(euid: int) -> None:
    assert check_euid(euid) == euid
    assert parse_euid_query(f"euid={euid}".encode()) == euid


@given(euids)
def test_an_euid_is_accepted_only_in_range(euid: Any) -> None:
    valid = type(euid) is int and 1 <= euid <= INT64_MAX
    if valid:
        assert check_euid(euid) == euid
    else:
        with pytest.raises(EuidMissing if euid in (None, "") else InvalidParameters):
            check_euid(euid)


@given(st.binary(max_size=60))
def test_any_query_string_gives_an_euid_or_a_documented_error(query: bytes) -> None:
    try:
        euid = parse_euid_query(query)
    except DOCUMENTED:
        return
    assert 1 <= euid <= INT64_MAX


@given(st.text(max_size=30))
def test_any_escaped_euid_text_gives_an_euid_or_a_documented_error(text: str) -> None:
    try:
        euid = parse_euid_query(b"euid=" + quote(text).encode())
    except DOCUMENTED:
        return
    assert euid == int(text)


@given(
    euid=euids,
    kind=st.one_of(st.sampled_from([op.value for op in Op]), json_values),
    properties=st.one_of(
        st.dictionaries(st.text(max_size=8), json_values, max_size=6), json_values
    ),
    timestamp=st.one_of(st.just(ABSENT), st.integers(-1, 2 * now_ms()), st.integers(), json_values),
)
def test_a_property_request_parses_with_its_invariants_or_fails_documented(
    euid: Any, kind: Any, properties: Any, timestamp: Any
) -> None:
    obj = {"euid": euid, "type": kind, "properties": properties}
    if timestamp is not ABSENT:
        obj["timestamp"] = timestamp
    try:
        parsed = parse_property_request(encode(obj), LIMITS)
    except DOCUMENTED:
        return
    assert 1 <= parsed.euid <= INT64_MAX and parsed.euid == euid
    assert parsed.op.value == kind
    assert 1 <= len(parsed.properties) <= LIMITS.max_properties
    if timestamp is ABSENT or timestamp is None:
        assert parsed.timestamp is None
    else:
        assert parsed.timestamp == timestamp and type(timestamp) is int
        assert 0 <= timestamp <= now_ms() + MAX_AHEAD_MS


@given(
    name=st.one_of(st.sampled_from(IDENTITY_NAMES), json_values),
    values=st.one_of(st.lists(json_values, max_size=120), json_values),
)
def test_a_register_request_parses_with_its_invariants_or_fails_55004(
    name: Any, values: Any
) -> None:
    body = encode({"identity_name": name, "identity_values": values})
    try:
        parsed = parse_register_request(body, LIMITS)
    except InvalidParameters:
        return
    assert parsed.identity_name in IDENTITY_NAMES
    assert 1 <= len(parsed.identity_values) <= LIMITS.max_identity_values


def test_an_euid_missing_from_the_body_is_40007_before_anything_else() -> None:
    with pytest.raises(EuidMissing):
        parse_property_request(b'{"type": "nonsense"}', LIMITS)
