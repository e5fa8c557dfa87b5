"""The pure operations: reference semantics, with properties checked by hypothesis."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from userprops.operations import Op, apply, event_time, increase_integer_text, is_stale
from userprops.schema import INT64_MAX, INT64_MIN, AttrType, Rejected, decode, encode, parse_number

elements = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
lists = st.lists(elements, max_size=12, unique=True).map(tuple)
integers = st.integers(min_value=-(10**12), max_value=10**12)
decimals = st.decimals(min_value=-(10**6), max_value=10**6, places=4, allow_nan=False)


@given(current=lists, added=lists)
def test_add_then_remove_of_new_elements_restores_the_list(
    current: tuple[str, ...], added: tuple[str, ...]
) -> None:
    fresh = tuple(a for a in added if a not in current)
    after = apply(Op.REMOVE, apply(Op.ADD, current or None, fresh), fresh) if fresh else current
    assert (after or ()) == current


@given(current=lists, added=lists)
def test_add_keeps_existing_order_and_appends_new_elements_once(
    current: tuple[str, ...], added: tuple[str, ...]
) -> None:
    result = apply(Op.ADD, current or None, added)
    assert isinstance(result, tuple)
    assert result[: len(current)] == current
    assert len(set(result)) == len(result)
    assert set(result) == set(current) | set(added)


@given(current=lists, removed=lists)
def test_remove_drops_exactly_the_given_elements(
    current: tuple[str, ...], removed: tuple[str, ...]
) -> None:
    result = apply(Op.REMOVE, current or None, removed) or ()
    assert result == tuple(c for c in current if c not in removed)


@given(steps=st.lists(integers | decimals, min_size=1, max_size=30))
def test_increases_sum_exactly(steps: list[int | Decimal]) -> None:
    value = None
    for step in steps:
        value = apply(Op.INCREASE, value, Decimal(step))
    assert value == sum(Decimal(s) for s in steps)


def test_tenths_add_up_exactly() -> None:
    value = apply(Op.SET, None, Decimal("0.1"))
    for _ in range(10):
        value = apply(Op.INCREASE, value, Decimal("0.1"))
    assert value == Decimal("1.1")


def test_increase_of_an_absent_value_counts_from_zero() -> None:
    assert apply(Op.INCREASE, None, Decimal(-3)) == Decimal(-3)


def test_increase_beyond_int64_is_rejected() -> None:
    with pytest.raises(Rejected, match="64 bits"):
        apply(Op.INCREASE, Decimal(2**63 - 1), Decimal(1))


@given(current=st.none() | lists | st.text(min_size=1))
def test_delete_is_idempotent(current: object) -> None:
    once = apply(Op.DELETE, current, None)  # type: ignore[arg-type]
    assert once is None
    assert apply(Op.DELETE, once, None) is None  # type: ignore[arg-type]


def test_set_overwrites_whatever_was_there() -> None:
    assert apply(Op.SET, "silver", "gold") == "gold"
    assert apply(Op.SET, None, "gold") == "gold"


def test_removing_every_element_leaves_no_value() -> None:
    assert apply(Op.REMOVE, ("a",), ("a",)) is None
    assert apply(Op.REMOVE, None, ("a",)) is None


def test_only_set_and_delete_lose_to_a_newer_stored_value() -> None:
    assert [op for op in Op if is_stale(op, 200, 100)] == [Op.SET, Op.DELETE]


@pytest.mark.parametrize(
    ("stored", "at", "stale"),
    [(None, 0, False), (100, 100, False), (100, 101, False), (101, 100, True)],
)
def test_a_set_applies_unless_the_stored_value_is_newer(
    stored: int | None, at: int, stale: bool
) -> None:
    assert is_stale(Op.SET, stored, at) is stale


@pytest.mark.parametrize(("stored", "at", "after"), [(None, 5, 5), (3, 5, 5), (7, 5, 7)])
def test_an_applied_write_leaves_the_newer_of_the_two_times(
    stored: int | None, at: int, after: int
) -> None:
    assert event_time(stored, at) == after


_INT64 = st.integers(INT64_MIN, INT64_MAX)
_STORED = st.one_of(
    st.none(),
    _INT64.map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.sampled_from(["-", "--1", "1-2", "1e3", "", "\u0661"]),
)


@given(_STORED, st.one_of(st.integers(INT64_MIN - 5, INT64_MAX + 5), st.booleans()))
def test_integer_increase_on_stored_text_agrees_with_the_general_path(
    stored: str | None, raw: int
) -> None:
    def general() -> str:
        before = None if stored is None else decode(AttrType.NUMBER, stored)
        after = apply(Op.INCREASE, before, parse_number(raw))
        assert isinstance(after, Decimal)
        return encode(AttrType.NUMBER, after)

    try:
        fast = increase_integer_text(stored, raw)
    except Rejected as reason:
        with pytest.raises(Rejected, match=reason.reason):
            general()
        return
    if fast is not None:
        assert fast == general()


def test_integer_increase_takes_the_fast_path_for_integers_only() -> None:
    assert increase_integer_text("41", 1) == "42"
    assert increase_integer_text(None, -3) == "-3"
    assert increase_integer_text("1.5", 1) is None
    assert increase_integer_text("1", True) is None
    assert increase_integer_text("1", INT64_MAX + 1) is None
    with pytest.raises(Rejected, match="outside signed 64 bits"):
        increase_integer_text(str(INT64_MAX), 1)
