"""Migrations on every backend: applied in order they build the schema a fresh install
builds, and ``userprops migrate [--dry-run]`` reports what it does."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

import userprops.storage
from tests.support.pgcluster import Databases
from userprops.auth import Principal
from userprops.cli import main
from userprops.config import Limits
from userprops.errors import StaleProperty
from userprops.operations import Op
from userprops.properties import PropertyJob, PropertyOutcome, PropertyRequest
from userprops.schema import AttrType, SchemaMode
from userprops.storage import (
    Migration,
    Storage,
    StoredValue,
    migrations,
    open_storage,
    sqlite_path,
)


def _backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite:") else "postgres"


def _sqlite_schema(url: str) -> dict[str, Any]:
    with sqlite3.connect(sqlite_path(url)) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT IN ('schema_migrations', 'sqlite_sequence') ORDER BY name"
            )
        ]
        schema: dict[str, Any] = {}
        for t in tables:
            indexes = {
                row[1]: (row[2], conn.execute(f"PRAGMA index_info('{row[1]}')").fetchall())
                for row in conn.execute(f"PRAGMA index_list('{t}')")
            }
            schema[t] = {
                "columns": conn.execute(f"PRAGMA table_xinfo('{t}')").fetchall(),
                "indexes": indexes,
                "foreign_keys": conn.execute(f"PRAGMA foreign_key_list('{t}')").fetchall(),
            }
        return schema


def _postgres_schema(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, ordinal_position, data_type, is_nullable,"
            " column_default, is_identity, identity_generation FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name <> 'schema_migrations'"
            " ORDER BY table_name, ordinal_position"
        ).fetchall()
        indexes = conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations' ORDER BY indexname"
        ).fetchall()
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
            " AND conrelid::regclass::text <> 'schema_migrations' ORDER BY conname"
        ).fetchall()
    return {"columns": columns, "indexes": indexes, "constraints": constraints}


def _schema(url: str) -> dict[str, Any]:
    return _sqlite_schema(url) if _backend(url) == "sqlite" else _postgres_schema(url)


def _run_script(url: str, script: str) -> None:
    """Run SQL on the database itself, without the migration machinery (to build a schema
    from one script, or to write rows as an older version did)."""
    if _backend(url) == "sqlite":
        with sqlite3.connect(sqlite_path(url)) as conn:
            conn.executescript(script)
    else:
        with psycopg.connect(url) as conn:
            conn.execute(script)


@pytest.fixture
def other_url(storage_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A second empty database on the backend of ``storage_url``."""
    if _backend(storage_url) == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    databases: Databases = request.getfixturevalue("pg_databases")
    url = databases.create()
    request.addfinalizer(lambda: databases.release(url))
    return url


def test_migrations_applied_one_at_a_time_build_the_fresh_install_schema(
    storage_url: str, other_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = _backend(storage_url)
    every = migrations(backend)
    assert [m.version for m in every] == list(range(1, len(every) + 1))

    for step in range(1, len(every) + 1):
        released: list[Migration] = every[:step]
        monkeypatch.setattr(userprops.storage, "migrations", lambda _, r=released: r)
        store = open_storage(storage_url)
        try:
            assert store.migrate() == [f"{step:04d}_{every[step - 1].name}"]
        finally:
            store.close()

    _run_script(other_url, "\n".join(m.sql for m in every))
    assert _schema(storage_url) == _schema(other_url)
    assert _schema(storage_url)  # not two empty schemas


def test_migrate_dry_run_lists_pending_migrations_and_applies_nothing(storage_url: str) -> None:
    runner = CliRunner()
    names = [f"{m.version:04d}_{m.name}" for m in migrations(_backend(storage_url))]

    dry = runner.invoke(main, ["migrate", "--dry-run", "--json", "--database", storage_url])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output) == {"pending": names}
    again = runner.invoke(main, ["migrate", "--dry-run", "--json", "--database", storage_url])
    assert json.loads(again.output) == {"pending": names}

    applied = runner.invoke(main, ["migrate", "--json", "--database", storage_url])
    assert json.loads(applied.output) == {"applied": names}
    done = runner.invoke(main, ["migrate", "--database", storage_url])
    assert done.output.strip() == "nothing applied; schema is up to date"


def _migrated_before(
    url: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Migration], Storage, Migration]:
    """The database of ``url`` migrated up to the migration ``name``, not included: every
    migration, the storage open on it, and that migration."""
    every = migrations(_backend(url))
    [target] = [m for m in every if m.name == name]
    monkeypatch.setattr(userprops.storage, "migrations", lambda _: every[: target.version - 1])
    store = open_storage(url)
    store.migrate()
    return every, store, target


def test_values_stored_before_event_time_take_the_time_they_were_written(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    every, store, event_time = _migrated_before(storage_url, "event_time", monkeypatch)
    with store.transaction() as tx:
        pid = tx.create_project("p", SchemaMode.AUTO, "UTC").id
        euid = tx.create_user(pid)
        tx.define_attribute(pid, "plan", AttrType.STRING)
    store.close()
    _run_script(
        storage_url,
        "INSERT INTO user_values (project_id, euid, name, type, value, updated_at, sort_key)"
        f" VALUES ({pid}, {euid}, 'plan', 'STRING', 'gold', 1700000000000, 'gold')",
    )

    monkeypatch.setattr(userprops.storage, "migrations", lambda _: every)
    store = open_storage(storage_url)
    try:
        assert store.migrate() == [
            f"{m.version:04d}_{m.name}" for m in every[event_time.version - 1 :]
        ]
        gold = StoredValue(AttrType.STRING, "gold", 1_700_000_000_000)
        with store.transaction() as tx:  # the group-commit reads, made again, carry it
            assert tx.lock_values({(pid, euid): ["plan"]}) == {(pid, euid): {"plan": gold}}
            read = tx.lock_segment_values({(pid, euid): ["plan"]}, [pid], [])
            assert read.values == {(pid, euid): {"plan": gold}}
        assert store.read_user(pid, euid) == {"plan": gold}
        # A backfill of an older fact leaves it; a newer one replaces it.
        who = Principal(0, "key", pid, SchemaMode.AUTO, UTC)
        older = PropertyRequest(euid, Op.SET, {"plan": "silver"}, 1_699_999_999_999)
        newer = PropertyRequest(euid, Op.SET, {"plan": "bronze"}, 1_700_000_000_001)
        [stale, applied] = store.run_batch(
            [PropertyJob(who, older, Limits(), {}), PropertyJob(who, newer, Limits(), {})]
        )
        assert isinstance(stale, PropertyOutcome) and isinstance(applied, PropertyOutcome)
        assert [e.code for e in stale.errors] == [StaleProperty.code] and applied.errors == []
        assert store.read_user(pid, euid) == {
            "plan": StoredValue(AttrType.STRING, "bronze", 1_700_000_000_001)
        }
    finally:
        store.close()


def test_memberships_held_before_0015_are_copied_into_the_users_rows(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    every, store, _ = _migrated_before(pg_url, "members_in_users", monkeypatch)
    with store.transaction() as tx:
        pid = tx.create_project("p", SchemaMode.AUTO, "UTC").id
        a, b, c = (tx.create_user(pid) for _ in range(3))
    store.close()
    _run_script(
        pg_url,
        "INSERT INTO segments (id, project_id, name, condition, quiet, created_at, updated_at)"
        f" VALUES (7, {pid}, 'x', '{{}}', false, 'now', 'now'),"
        f" (5, {pid}, 'y', '{{}}', false, 'now', 'now');"
        f" INSERT INTO segment_members VALUES ({pid}, 7, {a}), ({pid}, 5, {a}), ({pid}, 7, {b})",
    )

    monkeypatch.setattr(userprops.storage, "migrations", lambda _: every)
    store = open_storage(pg_url)
    try:
        store.migrate()
        with store.transaction() as tx:
            assert [tx.user_segments(pid, e) for e in (a, b, c)] == [["x", "y"], ["x"], []]
            asked = [(pid, a, 5), (pid, a, 7), (pid, b, 5), (pid, b, 7), (pid, c, 7)]
            read = tx.lock_segment_values({(pid, a): [], (pid, b): []}, [pid], asked)
            assert set(read.members) == {(pid, a, 5), (pid, a, 7), (pid, b, 7)}
            assert read.values == {(pid, a): {}, (pid, b): {}}
    finally:
        store.close()
