"""Sort keys (userprops.keys): text that orders like the values, exactly, and the same keys
from the migration that fills them for values stored before it, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import example, given, strategies as st

import userprops.storage
from userprops.keys import datetime_key, decimal_key, number_key, sort_key
from userprops.schema import (
    INT64_MAX,
    INT64_MIN,
    AttrType,
    Rejected,
    SchemaMode,
    check_number,
    encode,
    format_number,
)
from userprops.storage import Storage, migrations, open_storage
from userprops.storage.segment_sql import _successor


@st.composite
def numbers(draw: st.DrawFn) -> Decimal:
    """Any NUMBER: int64 integers, and decimals of up to 28 significant digits."""
    if draw(st.booleans()):
        return Decimal(draw(st.integers(INT64_MIN, INT64_MAX)))
    whole = draw(st.integers(0, 10**19 - 1) | st.integers(0, 12))
    fraction = draw(st.text("0123456789", min_size=1, max_size=28))
    sign = draw(st.sampled_from(["", "-"]))
    try:
        return check_number(Decimal(f"{sign}{whole}.{fraction}"))
    except Rejected:
        return Decimal(0)


@given(numbers(), numbers())
@example(Decimal("-5"), Decimal("-5.1"))
@example(Decimal("-0.5"), Decimal("-0.55"))
@example(Decimal("0.05"), Decimal("0.5"))
@example(Decimal(INT64_MIN), Decimal(INT64_MAX))
@example(Decimal("0"), Decimal("-0.0000000000000000000000000001"))
def test_number_keys_order_like_the_numbers(a: Decimal, b: Decimal) -> None:
    ka, kb = decimal_key(a), decimal_key(b)
    assert (ka < kb) == (a < b)
    assert (ka == kb) == (a == b)
    assert ka == number_key(format_number(a))


def test_number_keys_read_as_documented() -> None:
    ordered = ["-10", "-5", "-0.5", "0", "0.05", "0.5", "5", "10"]
    keys = [number_key(n) for n in ordered]
    assert keys == ["NR89~", "NS4~", "NT4~", "PA", "PA05", "PA5", "PB5", "PC10"]
    assert keys == sorted(keys)


instants = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)
).map(lambda d: d.replace(tzinfo=UTC))


@given(instants, instants)
@example(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC))
def test_datetime_keys_order_like_the_instants(a: datetime, b: datetime) -> None:
    assert (datetime_key(a) < datetime_key(b)) == (a < b)
    assert (datetime_key(a) == datetime_key(b)) == (a == b)


prefix_text = st.text(st.sampled_from(["a", "b", "\ud7ff", "\ue000", "\U0010ffff"]), max_size=4)


@given(prefix_text.filter(bool), prefix_text)
def test_a_prefix_range_holds_exactly_the_strings_starting_with_it(prefix: str, text: str) -> None:
    upper = _successor(prefix)
    inside = prefix <= text and (upper is None or text < upper)
    assert inside == text.startswith(prefix)
    assert (prefix <= prefix + text and (upper is None or prefix + text < upper)) is True


def test_string_keys_are_cut_and_lists_have_none() -> None:
    assert sort_key(AttrType.STRING, "x" * 300) == "x" * 200
    assert sort_key(AttrType.BOOL, "true") == "true"
    assert sort_key(AttrType.LIST, '["a"]') is None


SAMPLES: list[tuple[AttrType, object]] = [
    *((AttrType.NUMBER, Decimal(n)) for n in ("0", "7", "-7", "0.25", "-0.25", "1234.5")),
    (AttrType.NUMBER, Decimal(INT64_MIN)),
    (AttrType.NUMBER, Decimal(INT64_MAX)),
    (AttrType.NUMBER, Decimal("-0.0000000000000000000000000001")),
    (AttrType.NUMBER, Decimal("-9223372036854775806.123456789")),
    *(
        (AttrType.DATETIME, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) + timedelta(microseconds=us))
        for us in (0, 1, 999999, 123456)
    ),
    (AttrType.DATETIME, datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    (AttrType.DATETIME, datetime(1, 1, 1, tzinfo=UTC)),
    (AttrType.DATETIME, datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    (AttrType.STRING, "gold"),
    (AttrType.STRING, "é" * 250),
    (AttrType.BOOL, True),
    (AttrType.BOOL, False),
    (AttrType.LIST, ("a", "b", "é")),
]


def test_the_migration_keys_values_stored_before_it_as_the_write_path_does(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = "sqlite" if storage_url.startswith("sqlite") else "postgres"
    every = migrations(backend)
    segments = next(m for m in every if m.name == "segments")
    before = [m for m in every if m.version < segments.version]
    monkeypatch.setattr(userprops.storage, "migrations", lambda _: before)
    store: Storage = open_storage(storage_url)
    try:
        store.migrate()
        with store.transaction() as tx:
            pid = tx.create_project("p", SchemaMode.AUTO, "UTC").id
            for i, (kind, value) in enumerate(SAMPLES):
                euid = tx.create_user(pid)
                tx._execute(  # type: ignore[attr-defined]
                    "INSERT INTO user_values (project_id, euid, name, type, value, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, 0)",
                    (pid, euid, f"a{i}", kind.value, encode(kind, value)),  # type: ignore[arg-type]
                )
        monkeypatch.setattr(userprops.storage, "migrations", lambda _: every)
        assert store.migrate()[0].endswith("_segments")
        with store.read() as tx:
            rows = tx._all(  # type: ignore[attr-defined]
                "SELECT type, value, sort_key FROM user_values ORDER BY euid"
            )
            items = tx._all(  # type: ignore[attr-defined]
                "SELECT item FROM user_list_items ORDER BY item"
            )
    finally:
        store.close()
    assert [key for _, _, key in rows] == [
        sort_key(AttrType(kind), value) for kind, value, _ in rows
    ]
    assert [r[0] for r in items] == ["a", "b", "é"]
