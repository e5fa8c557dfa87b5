"""Bulk seeding for the scale scenario: users with many attribute values written straight
into a database in large transactions (SQLite: ``executemany``; PostgreSQL: ``COPY``), far
faster than the API.

The values are stored in the same form the engine writes (:func:`userprops.schema.encode`),
with the sort keys and LIST elements the write path keeps beside them
(:func:`userprops.keys.sort_key`, ``user_list_items``), so the service reads, updates and
queries them like any others. Each attribute cycles through its samples by EUID: for
instance ``plan`` is ``gold`` for one user in seven, ``age`` 42 for one in six.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import click

from userprops.keys import sort_key
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
    texts = _texts_keyed()
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
            "INSERT INTO user_values (project_id, euid, name, type, value, updated_at,"
            " sort_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
            _rows(project_id, lo, hi, texts, stamp),
        )
        conn.executemany(
            "INSERT INTO user_list_items (project_id, euid, name, item) VALUES (?, ?, ?, ?)",
            _items(project_id, lo, hi, texts),
        )
        conn.execute("COMMIT")
        if progress:
            _bar(hi - first, users, time.monotonic() - started)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    if progress:
        click.echo(err=True)
    return range(first, first + users)


Texts = list[tuple[str, str, list[tuple[str, str | None]]]]


def _texts_keyed() -> Texts:
    """Each attribute with its type and its samples' (stored text, sort key)."""
    return [
        (name, kind, [(text, sort_key(AttrType(kind), text)) for text in values])
        for name, kind, values in _texts()
    ]


def _rows(
    project_id: int, lo: int, hi: int, texts: Texts, stamp: int
) -> Iterator[tuple[int, int, str, str, str, int, str | None]]:
    # Sorted by primary key (project_id, euid, name): appends to the B-tree, no page splits.
    ordered = sorted(texts)
    for euid in range(lo, hi):
        for name, kind, values in ordered:
            text, key = values[euid % len(values)]
            yield (project_id, euid, name, kind, text, stamp, key)


def _items(project_id: int, lo: int, hi: int, texts: Texts) -> Iterator[tuple[int, int, str, str]]:
    """The elements of the LIST values, as rows of user_list_items."""
    lists = [(name, values) for name, kind, values in sorted(texts) if kind == "LIST"]
    for euid in range(lo, hi):
        for name, values in lists:
            text, _ = values[euid % len(values)]
            for item in sorted(json.loads(text)):
                yield (project_id, euid, name, item)


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


def preload_postgres(
    url: str, project_id: int, users: int, *, chunk: int = 50_000, progress: bool = True
) -> range:
    """:func:`preload` into a PostgreSQL database, with ``COPY``, then ``VACUUM ANALYZE``
    (so the planner knows the tables, and index-only scans need no heap fetch)."""
    import psycopg

    now = datetime.now(UTC).isoformat(timespec="seconds")
    stamp = time.time_ns() // 1_000_000
    texts = _texts_keyed()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")  # a crash mid-seed means seeding again
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO attributes (project_id, name, type, created_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (project_id, name) DO NOTHING",
                [(project_id, name, kind.value, now) for name, kind in ATTRIBUTES.items()],
            )
        row = conn.execute("SELECT coalesce(max(euid), 0) + 1 FROM users").fetchone()
        first = int(row[0]) if row is not None else 1
        started = time.monotonic()
        for lo in range(first, first + users, chunk):
            hi = min(lo + chunk, first + users)
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("COPY users (euid, project_id, created_at) FROM STDIN") as copy:
                    for euid in range(lo, hi):
                        copy.write_row((euid, project_id, now))
                with cur.copy("COPY identities (project_id, name, value, euid) FROM STDIN") as copy:
                    for euid in range(lo, hi):
                        copy.write_row((project_id, "user_id", f"pre-{euid - first}", euid))
                with cur.copy(
                    "COPY user_values (project_id, euid, name, type, value, updated_at,"
                    " sort_key) FROM STDIN"
                ) as copy:
                    for values in _rows(project_id, lo, hi, texts, stamp):
                        copy.write_row(values)
                with cur.copy(
                    "COPY user_list_items (project_id, euid, name, item) FROM STDIN"
                ) as copy:
                    for item in _items(project_id, lo, hi, texts):
                        copy.write_row(item)
            if progress:
                _bar(hi - first, users, time.monotonic() - started)
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('users', 'euid'), (SELECT max(euid) FROM users))"
        )
        for table in ("users", "identities", "user_values", "user_list_items"):
            conn.execute(f"VACUUM ANALYZE {table}")
    if progress:
        click.echo(err=True)
    return range(first, first + users)
