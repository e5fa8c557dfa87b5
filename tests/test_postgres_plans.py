"""The group-commit write's statements find every row by its primary key on PostgreSQL,
whatever the planner knows of the tables: new and empty, grown but never analyzed, or
analyzed; with the plan made for the values given (custom) or once for any (generic, which
is what a prepared statement keeps)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import psycopg
import pytest

from userprops.storage import open_storage
from userprops.storage.postgres_transaction import (
    DELETE_VALUES,
    LOCK_USERS,
    READ_VALUES,
    UPSERT_VALUES,
)

STATEMENTS = {
    "lock": (LOCK_USERS, "users_pkey", "'[[1, 5], [1, 9]]'"),
    "read": (READ_VALUES, "user_values_pkey", """'[[1, 5, "a3"], [1, 9, "a7"]]'"""),
    "upsert": (
        UPSERT_VALUES,
        "Conflict Arbiter Indexes: user_values_pkey",
        """0, '[[1, 5, "a3", "NUMBER", "1"]]'""",
    ),
    "delete": (DELETE_VALUES, "user_values_pkey", """'[[1, 5, "a3"], [1, 9, "a7"]]'"""),
}


def _numbered(query: str) -> str:
    """psycopg's %s placeholders as PREPARE's $1, $2, ..."""
    counter = itertools.count(1)
    return re.sub("%s", lambda _: f"${next(counter)}", query)


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    storage = open_storage(pg_url)
    storage.migrate()
    storage.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO projects (slug, schema_mode, timezone, created_at)"
            " VALUES ('p', 'auto', 'UTC', 'now')"
        )
        yield conn


def _plans(conn: psycopg.Connection[tuple[object, ...]]) -> Iterator[tuple[str, str, str]]:
    """(statement, plan cache mode, plan) for every statement, both ways."""
    for name, (query, _, args) in STATEMENTS.items():
        conn.execute(f"PREPARE {name} AS {_numbered(query)}")  # type: ignore[arg-type]
        for mode in ("force_custom_plan", "force_generic_plan"):
            conn.execute(f"SET plan_cache_mode = {mode}")  # type: ignore[arg-type]
            rows = conn.execute(f"EXPLAIN EXECUTE {name} ({args})").fetchall()  # type: ignore[arg-type]
            yield name, mode, "\n".join(str(row[0]) for row in rows)
        conn.execute(f"DEALLOCATE {name}")  # type: ignore[arg-type]


def _assert_keyed(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    for name, mode, plan in _plans(conn):
        index = STATEMENTS[name][1]
        assert index in plan, f"{name} ({mode}) does not use {index}:\n{plan}"
        for scan in ("Seq Scan", "Bitmap", "Hash Join", "Merge Join"):
            assert scan not in plan, f"{name} ({mode}) plans a {scan}:\n{plan}"


def test_the_write_statements_probe_the_primary_key_on_new_tables(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    _assert_keyed(conn)


def test_the_write_statements_probe_the_primary_key_on_grown_tables_never_analyzed(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    conn.execute(
        "INSERT INTO users (project_id, created_at) SELECT 1, 'now' FROM generate_series(1, 3000)"
    )
    conn.execute(
        "INSERT INTO user_values SELECT 1, e, 'a' || i, 'NUMBER', '1', 0"
        " FROM generate_series(1, 3000) AS e, generate_series(1, 8) AS i"
    )
    _assert_keyed(conn)
    conn.execute("ANALYZE users, user_values")
    _assert_keyed(conn)
