"""The group-commit write finds every row by its primary key on PostgreSQL, whatever the
planner knows of the tables: new and empty, grown but never analyzed, or analyzed; with
plans made for the values given (custom) or once for any values (generic: what a prepared
statement, or a PL/pgSQL function, keeps). The plans are those PostgreSQL actually makes
for ``lock_values`` and ``write_values``, nested statements included, and for the batched
read of ``GET /v1/user/property`` (``READ_USERS``), reported by auto_explain."""

from __future__ import annotations

from tests.support.plans import Conn, explained
from userprops.schema import AttrType
from userprops.storage import StoredValue
from userprops.storage.postgres_transaction import READ_USERS, PostgresTransaction, json_text


def _plans(conn: Conn, mode: str) -> list[str]:
    """The plan of every statement a batch's read and write run, nested ones included."""

    def batch(conn: Conn) -> None:
        with conn.transaction():
            tx = PostgresTransaction(conn)
            tx.lock_values({(1, 1): ["a3", "a7"], (1, 2): []})
            tx.write_values(
                {(1, 1, "a3"): StoredValue(AttrType.NUMBER, "1")}, [(1, 2, "a7"), (1, 2, "b")]
            )
        conn.execute(READ_USERS, (json_text([[1, 1], [1, 2], [2, 1]]),))

    return explained(conn, mode, batch)


def _assert_keyed(conn: Conn) -> None:
    for mode in ("force_custom_plan", "force_generic_plan"):
        plans = _plans(conn, mode)
        nested = [p for p in plans if "FROM users" in p or "user_values" in p]
        assert len(nested) >= 4 * 6, plans  # lock, read, write, GET's read: each run
        assert sum("SELECT k.i - 1" in p for p in nested) == 6, plans  # READ_USERS, each run
        for plan in nested:
            assert "_pkey" in plan, plan
            for scan in ("Seq Scan", "Bitmap", "Hash Join", "Merge Join"):
                assert scan not in plan, f"{mode}: {scan}:\n{plan}"
        writes = [p for p in nested if "INSERT INTO user_values" in p]
        assert writes and all("Arbiter Indexes: user_values_pkey" in p for p in writes)


def test_the_group_commit_statements_probe_the_primary_key_on_new_tables(conn: Conn) -> None:
    _assert_keyed(conn)


def test_the_group_commit_statements_probe_the_primary_key_on_grown_tables(conn: Conn) -> None:
    conn.execute(
        "INSERT INTO users (project_id, created_at) SELECT 1, 'now' FROM generate_series(1, 3000)"
    )
    conn.execute(
        "INSERT INTO user_values SELECT 1, euid, 'a' || i, 'NUMBER', '1', 0"
        " FROM users, generate_series(1, 8) AS i ON CONFLICT DO NOTHING"
    )
    _assert_keyed(conn)  # never analyzed: the planner guesses from the table's size
    conn.execute("ANALYZE users, user_values")
    _assert_keyed(conn)


def test_the_tables_segment_queries_read_are_vacuumed_at_one_percent(conn: Conn) -> None:
    """Index-only scans stay index-only where the visibility map keeps up (0012)."""
    rows = conn.execute(
        "SELECT relname, reloptions FROM pg_class"
        " WHERE relname IN ('user_values', 'user_list_items', 'segment_members')"
    ).fetchall()
    options = {str(name): set(opts or ()) for name, opts in rows}  # type: ignore[call-overload]
    assert set(options) == {"user_values", "user_list_items", "segment_members"}
    for name, found in options.items():
        assert "autovacuum_vacuum_scale_factor=0.01" in found, name
        assert "autovacuum_vacuum_insert_scale_factor=0.01" in found, name
