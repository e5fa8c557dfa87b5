"""What the two backends must agree on beyond the contract's methods: the same tables,
keys and foreign keys, and the same answers where they once drifted apart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from userprops.errors import Conflict, ProjectNotFound
from userprops.schema import SchemaMode
from userprops.storage import Storage, open_storage
from userprops.storage.base import TABLE_COLUMNS

ForeignKeys = set[tuple[str, str, str, str]]  # (table, column, referenced table, column)


def _sqlite_foreign_keys(path: Path) -> ForeignKeys:
    with sqlite3.connect(path) as conn:
        found: ForeignKeys = set()
        for table in TABLE_COLUMNS:
            for row in conn.execute(f"PRAGMA foreign_key_list({table})"):
                found.add((table, row[3], row[2], row[4]))
        return found


def _postgres_foreign_keys(url: str) -> ForeignKeys:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT cl.relname, a.attname, rc.relname, ra.attname"
            " FROM pg_constraint c"
            " JOIN pg_class cl ON cl.oid = c.conrelid"
            " JOIN pg_class rc ON rc.oid = c.confrelid"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
            " JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1]"
            " WHERE c.contype = 'f'"
        ).fetchall()
    return {(t, c, rt, rc) for t, c, rt, rc in rows if t in TABLE_COLUMNS}


def test_both_backends_have_the_same_foreign_keys(tmp_path: Path, pg_url: str) -> None:
    for url in (f"sqlite:///{tmp_path / 'fk.db'}", pg_url):
        store = open_storage(url)
        store.migrate()
        store.close()
    on_sqlite = _sqlite_foreign_keys(tmp_path / "fk.db")
    assert ("event_definitions", "project_id", "projects", "id") in on_sqlite
    assert on_sqlite == _postgres_foreign_keys(pg_url)


def test_an_event_definition_needs_its_project(storage: Storage) -> None:
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.ForeignKeyViolation)):
        with storage.transaction() as tx:
            tx.define_events(12345, ["signup"])
    with storage.read() as tx:
        assert tx.list_events_defined(12345) == []


def test_a_data_source_of_a_missing_project_is_project_not_found(storage: Storage) -> None:
    with pytest.raises(ProjectNotFound), storage.transaction() as tx:
        tx.create_datasource(12345, "crm", "k" * 24, "hash")
    with storage.transaction() as tx:  # the database is fine afterwards
        pid = tx.create_project("p", SchemaMode.AUTO, "UTC").id
        tx.create_datasource(pid, "crm", "k" * 24, "hash")
    with pytest.raises(Conflict), storage.transaction() as tx:
        tx.create_datasource(pid, "crm", "j" * 24, "hash")


@pytest.mark.parametrize(
    ("mode", "zone", "expected"),
    [
        (SchemaMode.STRICT, None, (SchemaMode.STRICT, "Asia/Tokyo")),
        (None, "Europe/Paris", (SchemaMode.AUTO, "Europe/Paris")),
        (None, None, (SchemaMode.AUTO, "Asia/Tokyo")),
        (SchemaMode.STRICT, "UTC", (SchemaMode.STRICT, "UTC")),
    ],
)
def test_updating_a_project_changes_only_what_is_given(
    storage: Storage,
    mode: SchemaMode | None,
    zone: str | None,
    expected: tuple[SchemaMode, str],
) -> None:
    with storage.transaction() as tx:
        pid = tx.create_project("p", SchemaMode.AUTO, "Asia/Tokyo").id
        other = tx.create_project("q", SchemaMode.AUTO, "UTC").id
        tx.update_project(pid, schema_mode=mode, timezone=zone)
    with storage.read() as tx:
        project, untouched = tx.get_project_by_id(pid), tx.get_project_by_id(other)
    assert project is not None and untouched is not None
    assert (project.schema_mode, project.timezone) == expected
    assert (untouched.schema_mode, untouched.timezone) == (SchemaMode.AUTO, "UTC")
