"""Backup and restore of a SQLite database, with SQLite's online backup API.

:func:`backup` copies a live database (a server may be writing to it) into a new
self-contained file: the copy is one consistent snapshot, taken in one step under a read
transaction, so every request is in it entirely or not at all. :func:`restore` copies such
a file back into the database of a URL. PostgreSQL is backed up with its own tools
(docs/operations.md).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from userprops.errors import Conflict, InvalidParameters
from userprops.serverlock import ServerRunning, sole_server
from userprops.storage import open_storage, sqlite_path
from userprops.storage.sqlite import BUSY_TIMEOUT_MS, create_private

_USER_DATA = "SELECT count(*) FROM projects"


def _sqlite_only(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        raise InvalidParameters(
            "backup and restore handle SQLite; back PostgreSQL up with pg_dump and restore "
            "it with pg_restore (docs/operations.md)"
        )
    return sqlite_path(url)


def _connect(path: str | Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    else:
        create_private(path)
        conn = sqlite3.connect(path)
    conn.isolation_level = None
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def table_counts(path: str | Path) -> dict[str, int]:
    """Rows per table of a SQLite file, every table included."""
    conn = _connect(path)
    try:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {n: int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}
    finally:
        conn.close()


def _check_backup_file(path: Path) -> None:
    """A readable, intact userprops database; 55004 otherwise."""
    if not path.is_file():
        raise InvalidParameters(f"{path}: no such file")
    conn = _connect(path, read_only=True)
    try:
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        conn.execute("SELECT version FROM schema_migrations").fetchall()
    except sqlite3.DatabaseError as exc:
        raise InvalidParameters(f"{path} is not a userprops SQLite database: {exc}") from None
    finally:
        conn.close()
    if ok != "ok":
        raise InvalidParameters(f"{path} is damaged: {ok}")


def backup(url: str, destination: Path, *, overwrite: bool = False) -> dict[str, int]:
    """Copy the database of ``url`` into ``destination``; return its row counts.

    The copy is written beside the destination and renamed into place only when it is
    complete and intact, so a failed backup never leaves a half-written file under that
    name. Raises :class:`Conflict` when the destination exists and not ``overwrite``.
    """
    source_path = _sqlite_only(url)
    if not Path(source_path).is_file():
        raise InvalidParameters(f"{source_path}: no such database")
    if destination.exists() and not overwrite:
        raise Conflict(f"{destination} exists; pass --overwrite to replace it")
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    source, copy = _connect(source_path), _connect(partial)
    try:
        source.backup(copy)  # one step: one consistent snapshot
        copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
    finally:
        copy.close()
        source.close()
    _check_backup_file(partial)
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, destination)
    return table_counts(destination)


def restore(source: Path, url: str, *, force: bool = False) -> dict[str, int]:
    """Replace the database of ``url`` with the backup ``source``, then migrate it to the
    current schema; return its row counts.

    Stop the server first: it keeps caches (credentials, attribute types) that a restore
    under it would make stale. The restore takes the server's lock
    (:mod:`userprops.serverlock`), so no server starts meanwhile. Raises
    :class:`Conflict` when a server runs on the file, or when the target already holds
    projects and not ``force``.
    """
    target_path = _sqlite_only(url)
    _check_backup_file(source)
    try:
        with sole_server(url):
            return _restore(source, url, target_path, force=force)
    except ServerRunning as exc:
        raise Conflict(f"{exc}: stop it before a restore, and start it again after") from None


def _restore(source: Path, url: str, target_path: str, *, force: bool) -> dict[str, int]:
    target = _connect(target_path)
    try:
        try:
            holds_data = bool(target.execute(_USER_DATA).fetchone()[0])
        except sqlite3.OperationalError:  # no projects table: a new or empty file
            holds_data = False
        if holds_data and not force:
            raise Conflict(f"{target_path} holds data; pass --force to replace it")
        backup_conn = _connect(source, read_only=True)
        try:
            backup_conn.backup(target)
        finally:
            backup_conn.close()
    finally:
        target.close()
    storage = open_storage(url)
    try:
        storage.migrate()
    finally:
        storage.close()
    return table_counts(target_path)
