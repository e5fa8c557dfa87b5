"""Bulk seeding for the scale scenario: users with many attribute values written straight
into a SQLite database in large transactions (``executemany``), far faster than the API.

The values are stored in the same form the engine writes (:func:`userprops.schema.encode`),
so the service reads and updates them like any others.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import click

from userprops.schema import AttrType, Typed, encode

# The attributes the write scenario touches keep the types it sends; the rest are filler.
ATTRIBUTES: dict[str, AttrType] = {
    "plan": AttrType.STRING,
    "city": AttrType.STRING,
    "age": AttrType.NUMBER,
    "last_seen": AttrType.DATETIME,
    "tags": AttrType.LIST,
    "vip": AttrType.BOOL,
    **{f"attr_{i:02d}": (AttrType.STRING if i % 2 else AttrType.NUMBER) for i in range(6, 20)},
}
_SAMPLES: dict[AttrType, list[Typed]] = {
    AttrType.STRING: ["free", "basic", "gold", "Paris", "Berlin", "Lagos", "some longer text"],
    AttrType.NUMBER: [Decimal(n) for n in ("7", "42", "1999", "3.25", "-12", "100000")],
    AttrType.DATETIME: [datetime(2026, 1, d, 8, d, tzinfo=UTC) for d in range(1, 8)],
    AttrType.LIST: [("t1",), ("t2", "t5"), ("t3", "t9", "t11")],
    AttrType.BOOL: [True, False],
}


def _texts() -> list[tuple[str, str, list[str]]]:
    """Each attribute with its type and a few encoded values to cycle through."""
    return [
        (name, kind.value, [encode(kind, v) for v in _SAMPLES[kind]])
        for name, kind in ATTRIBUTES.items()
    ]


def preload(
    path: str,
    project_id: int,
    users: int,
    *,
    chunk: int = 20_000,
    progress: bool = True,
) -> range:
    """Create ``users`` users (identity ``user_id`` = ``pre-<n>``) holding every attribute
    of :data:`ATTRIBUTES`; return their EUIDs (consecutive)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")  # a crash mid-seed just means seeding again
    conn.execute("PRAGMA cache_size = -262144")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    stamp = time.time_ns() // 1_000_000
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO attributes (project_id, name, type, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (project_id, name) DO NOTHING",
        [(project_id, name, kind.value, now) for name, kind in ATTRIBUTES.items()],
    )
    first = int(conn.execute("SELECT coalesce(max(euid), 0) + 1 FROM users").fetchone()[0])
    conn.execute("COMMIT")
    texts = _texts()
    started = time.monotonic()
    for lo in range(first, first + users, chunk):
        hi = min(lo + chunk, first + users)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO users (euid, project_id, created_at) VALUES (?, ?, ?)",
            ((euid, project_id, now) for euid in range(lo, hi)),
        )
        conn.executemany(
            "INSERT INTO identities (project_id, name, value, euid) VALUES (?, 'user_id', ?, ?)",
            ((project_id, f"pre-{euid - first}", euid) for euid in range(lo, hi)),
        )
        conn.executemany(
            "INSERT INTO user_values (project_id, euid, name, type, value, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            _rows(project_id, lo, hi, texts, stamp),
        )
        conn.execute("COMMIT")
        if progress:
            _bar(hi - first, users, time.monotonic() - started)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    if progress:
        click.echo(err=True)
    return range(first, first + users)


def _rows(
    project_id: int, lo: int, hi: int, texts: list[tuple[str, str, list[str]]], stamp: int
) -> Iterator[tuple[int, int, str, str, str, int]]:
    # Sorted by primary key (project_id, euid, name): appends to the B-tree, no page splits.
    ordered = sorted(texts)
    for euid in range(lo, hi):
        for name, kind, values in ordered:
            yield (project_id, euid, name, kind, values[euid % len(values)], stamp)


def _bar(done: int, total: int, elapsed: float) -> None:
    width = 40
    filled = width * done // total
    rate = done / elapsed if elapsed > 0 else 0.0
    click.echo(
        f"\rpreload [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} users"
        f" ({rate:,.0f} users/s, {rate * len(ATTRIBUTES):,.0f} values/s)",
        nl=False,
        err=True,
    )
