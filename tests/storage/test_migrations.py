"""Migrations on every backend: applied in order they build the schema a fresh install
builds, and ``userprops migrate [--dry-run]`` reports what it does."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

import userprops.storage
from tests.support.pgcluster import Databases
from userprops.cli import main
from userprops.storage import Migration, migrations, open_storage, sqlite_path


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


def _fresh_install(url: str, script: str) -> None:
    """Build a schema from one script, without the migration machinery."""
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

    _fresh_install(other_url, "\n".join(m.sql for m in every))
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
