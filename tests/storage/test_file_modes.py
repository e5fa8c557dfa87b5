"""Database and backup files are created readable by their owner only (docs/security.md).

SQLite creates a new database file 0644 (under the usual umask 022), readable by every
local user, and gives its -wal and -shm files the same mode; backups were the same."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from userprops import admin
from userprops.backup import backup, restore
from userprops.storage import open_storage


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_wal_and_shm_are_0600(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    storage = open_storage(f"sqlite:///{db}")
    try:
        storage.migrate()
        admin.create_project(storage, "p")  # a write: the -wal and -shm files exist now
        files = [db, tmp_path / "new.db-wal", tmp_path / "new.db-shm"]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        storage.close()


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    db.touch(mode=0o640)
    open_storage(f"sqlite:///{db}").close()
    assert mode(db) == 0o640


def test_backups_and_restored_databases_are_0600(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    storage = open_storage(url)
    storage.migrate()
    admin.create_project(storage, "p")
    storage.close()
    copy = tmp_path / "copy.db"
    backup(url, copy)
    assert mode(copy) == 0o600
    restored = tmp_path / "restored.db"
    restore(copy, f"sqlite:///{restored}")
    assert mode(restored) == 0o600
