"""The statements segments add to the group-commit write find each row by a key on
PostgreSQL, like the rest of it (tests/test_postgres_plans.py): the lock-and-read that
also reads segment versions and memberships (kept in the users rows), the write that
keeps list elements as rows, and the write of memberships; new, grown or analyzed
tables, custom and generic plans."""

from __future__ import annotations

from tests.support.plans import Conn, explained
from userprops.schema import AttrType
from userprops.storage import StoredValue
from userprops.storage.postgres_transaction import PostgresTransaction

# projects is left out: a handful of rows, which a scan reads as fast as a probe.
TABLES = ("user_list_items", "segment_members", "user_values", "users")


def _plans(conn: Conn, mode: str) -> list[str]:
    def batch(conn: Conn) -> None:
        with conn.transaction():
            tx = PostgresTransaction(conn)
            tx.lock_segment_values({(1, 1): ["tags"], (1, 2): []}, [1], [(1, 1, 1), (1, 2, 1)])
            tx.write_values(
                {(1, 1, "tags"): StoredValue(AttrType.LIST, '["a", "b"]')}, [(1, 2, "tags")]
            )
            tx.write_members([(1, 1, 2)], [(1, 1, 1)])

    return explained(conn, mode, batch)


def _assert_keyed(conn: Conn) -> None:
    for mode in ("force_custom_plan", "force_generic_plan"):
        plans = [p for p in _plans(conn, mode) if any(t in p for t in TABLES)]
        write = [p for p in plans if "INSERT INTO user_values" in p]
        assert write and all("Index Scan using user_list_items_pkey" in p for p in write)
        assert "user_list_items_by_item" not in "".join(write)
        members = [p for p in plans if "segment_members" in p]
        assert members and all("Index" in p for p in members), members
        # A write reads each user's memberships from the users row (0015), by its key,
        # and moves them there the same way.
        held = [p for p in plans if "'member'::text" in p]
        assert held and all("Index Scan using users_pkey" in p for p in held), held
        moved = [p for p in members if "Update on users" in p]
        assert moved and all("Index Scan using users_pkey" in p for p in moved), moved
        for plan in plans:
            for scan in ("Seq Scan", "Bitmap", "Hash Join", "Merge Join"):
                assert scan not in plan, f"{mode}: {scan}:\n{plan}"


def _segment(conn: Conn) -> None:
    conn.execute(
        "INSERT INTO segments (project_id, name, condition, built_to, quiet, created_at,"
        " updated_at) VALUES (1, 's', '{}', NULL, false, 'now', 'now'),"
        " (1, 't', '{}', NULL, false, 'now', 'now')"
    )


def _everyone_in_every_segment(conn: Conn) -> None:
    """3,000 users, each a member of every segment (both the rows and the users' arrays)."""
    conn.execute(
        "INSERT INTO users (project_id, created_at) SELECT 1, 'now' FROM generate_series(1, 3000)"
    )
    conn.execute(
        "INSERT INTO segment_members SELECT 1, s.id, u.euid FROM users u, segments s"
        " ON CONFLICT DO NOTHING"
    )
    conn.execute("UPDATE users SET segment_ids = ARRAY(SELECT id FROM segments ORDER BY id)")


def test_segment_statements_probe_primary_keys_on_new_tables(conn: Conn) -> None:
    _segment(conn)
    _assert_keyed(conn)


def test_segment_statements_probe_primary_keys_on_grown_tables(conn: Conn) -> None:
    _segment(conn)
    _everyone_in_every_segment(conn)
    conn.execute(
        "INSERT INTO user_list_items SELECT 1, euid, 'tags', 't' || i"
        " FROM users, generate_series(1, 4) AS i ON CONFLICT DO NOTHING"
    )
    _assert_keyed(conn)
    conn.execute("ANALYZE users, user_list_items, segment_members, projects")
    _assert_keyed(conn)


def test_erasing_a_user_deletes_its_memberships_by_primary_key(conn: Conn) -> None:
    """segment_members has no index by user on PostgreSQL (migration 0015): an erasure
    finds the user's rows by the segment ids of its users row."""
    _segment(conn)
    _everyone_in_every_segment(conn)
    conn.execute("ANALYZE users, segment_members")
    count = "SELECT count(*) FROM segment_members WHERE euid = 1500"

    def erase(conn: Conn) -> None:
        with conn.transaction(force_rollback=True):
            assert conn.execute(count).fetchone() == (2,)
            assert PostgresTransaction(conn).erase_user(1, 1500)
            assert conn.execute(count).fetchone() == (0,)

    for mode in ("force_custom_plan", "force_generic_plan"):
        deletes = [p for p in explained(conn, mode, erase) if "Delete on segment_members" in p]
        assert deletes and all("Index Scan using segment_members_pkey" in p for p in deletes)
        assert not any("Seq Scan on segment_members" in p for p in deletes), deletes
