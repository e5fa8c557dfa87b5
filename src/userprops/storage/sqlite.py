"""The embedded backend: one SQLite file in WAL mode with ``synchronous=FULL``.

One write connection, guarded by a lock (the group-commit writer and the CLI take turns);
one read connection per reading thread. SQLite allows one writer per file: run one server
process per database (the CLI may write beside it; it waits on ``busy_timeout``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec

from userprops.errors import Conflict, StorageUnavailable
from userprops.schema import AttrType, SchemaMode
from userprops.storage.base import (
    TABLE_COLUMNS,
    TABLE_KEYS,
    DataSource,
    JobResult,
    NewEvent,
    Project,
    Storage,
    StoredEvent,
    StoredValue,
    Transaction,
    UserKey,
    ValueKey,
    users_from_rows,
)

BUSY_TIMEOUT_MS = 5000
_JSON = msgspec.json.Encoder()
# (euid, name, type, value); the last three are null for a user without the names wanted.
_ROWS = msgspec.json.Decoder(list[tuple[int, Any, Any, Any]])
_TYPES = {kind.value: kind for kind in AttrType}
# Errors of the database itself fail a whole batch; others (constraints) fail one job.
_FATAL = (sqlite3.OperationalError, sqlite3.InternalError, sqlite3.NotSupportedError)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def create_private(path: str | os.PathLike[str]) -> None:
    """Create ``path`` readable by its owner only (0600), if it does not exist, before
    SQLite opens it: SQLite would create it 0644, readable by every local user, and gives
    its -wal and -shm files the database file's mode. An existing file keeps its mode; a
    path that cannot be created is left for SQLite to report."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        pass


def _connect(path: str) -> sqlite3.Connection:
    create_private(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _statements(script: str) -> Iterator[str]:
    """Split a migration script into statements, so it runs inside our transaction."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if buffer.strip() and not buffer.strip().startswith("--"):
        yield buffer.strip()


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except _FATAL as exc:
        raise StorageUnavailable(f"storage unavailable: {exc}") from exc


class SqliteTransaction(Transaction):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._c.execute(sql, params).fetchone()

    # Projects and data sources

    def create_project(self, slug: str, schema_mode: SchemaMode, timezone: str) -> Project:
        created = _now()
        try:
            cur = self._c.execute(
                "INSERT INTO projects (slug, schema_mode, timezone, created_at)"
                " VALUES (?, ?, ?, ?)",
                (slug, schema_mode.value, timezone, created),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"project {slug!r} already exists") from None
        assert cur.lastrowid is not None
        return Project(cur.lastrowid, slug, schema_mode, timezone, created)

    _PROJECT = "SELECT id, slug, schema_mode, timezone, created_at FROM projects"

    @staticmethod
    def _project(row: Any) -> Project | None:
        if row is None:
            return None
        return Project(row[0], row[1], SchemaMode(row[2]), row[3], row[4])

    def get_project(self, slug: str) -> Project | None:
        return self._project(self._one(self._PROJECT + " WHERE slug = ?", (slug,)))

    def get_project_by_id(self, project_id: int) -> Project | None:
        return self._project(self._one(self._PROJECT + " WHERE id = ?", (project_id,)))

    def list_projects(self) -> list[Project]:
        rows = self._c.execute(self._PROJECT + " ORDER BY id").fetchall()
        return [p for p in map(self._project, rows) if p is not None]

    def update_project(
        self, project_id: int, *, schema_mode: SchemaMode | None, timezone: str | None
    ) -> None:
        if schema_mode is not None:
            self._c.execute(
                "UPDATE projects SET schema_mode = ? WHERE id = ?", (schema_mode.value, project_id)
            )
        if timezone is not None:
            self._c.execute("UPDATE projects SET timezone = ? WHERE id = ?", (timezone, project_id))

    _DATASOURCE = (
        "SELECT id, project_id, name, api_key, secret_hash, enabled, created_at FROM datasources"
    )

    @staticmethod
    def _datasource(row: Any) -> DataSource:
        return DataSource(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])

    def create_datasource(
        self, project_id: int, name: str, api_key: str, secret_hash: str
    ) -> DataSource:
        created = _now()
        try:
            cur = self._c.execute(
                "INSERT INTO datasources (project_id, name, api_key, secret_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (project_id, name, api_key, secret_hash, created),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"data source {name!r} already exists in this project") from None
        assert cur.lastrowid is not None
        return DataSource(cur.lastrowid, project_id, name, api_key, secret_hash, True, created)

    def get_datasource(self, api_key: str) -> DataSource | None:
        row = self._one(self._DATASOURCE + " WHERE api_key = ?", (api_key,))
        return None if row is None else self._datasource(row)

    def list_datasources(self, project_id: int | None) -> list[DataSource]:
        if project_id is None:
            rows = self._c.execute(self._DATASOURCE + " ORDER BY id").fetchall()
        else:
            rows = self._c.execute(
                self._DATASOURCE + " WHERE project_id = ? ORDER BY id", (project_id,)
            ).fetchall()
        return [self._datasource(r) for r in rows]

    def update_datasource(
        self, api_key: str, *, enabled: bool | None = None, secret_hash: str | None = None
    ) -> bool:
        cur = self._c.execute(
            "UPDATE datasources SET enabled = coalesce(?, enabled),"
            " secret_hash = coalesce(?, secret_hash) WHERE api_key = ?",
            (None if enabled is None else int(enabled), secret_hash, api_key),
        )
        return cur.rowcount > 0

    # Attribute definitions

    def define_attribute(self, project_id: int, name: str, kind: AttrType) -> AttrType:
        self._c.execute(
            "INSERT INTO attributes (project_id, name, type, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (project_id, name) DO NOTHING",
            (project_id, name, kind.value, _now()),
        )
        row = self._one(
            "SELECT type FROM attributes WHERE project_id = ? AND name = ?", (project_id, name)
        )
        return AttrType(row[0])

    def attribute_types(self, project_id: int, names: Sequence[str]) -> dict[str, AttrType]:
        if not names:
            return {}
        marks = ",".join("?" * len(names))
        rows = self._c.execute(
            f"SELECT name, type FROM attributes WHERE project_id = ? AND name IN ({marks})",
            (project_id, *names),
        )
        return {name: AttrType(kind) for name, kind in rows}

    def list_attributes(self, project_id: int) -> list[tuple[str, AttrType, str]]:
        rows = self._c.execute(
            "SELECT name, type, created_at FROM attributes WHERE project_id = ? ORDER BY name",
            (project_id,),
        )
        return [(name, AttrType(kind), created) for name, kind, created in rows]

    # Users and identities

    def create_user(self, project_id: int) -> int:
        cur = self._c.execute(
            "INSERT INTO users (project_id, created_at) VALUES (?, ?)", (project_id, _now())
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def user_project(self, euid: int) -> int | None:
        row = self._one("SELECT project_id FROM users WHERE euid = ?", (euid,))
        return None if row is None else int(row[0])

    def has_user(self, project_id: int, euid: int) -> bool:
        row = self._one("SELECT 1 FROM users WHERE euid = ? AND project_id = ?", (euid, project_id))
        return row is not None

    def lock_user(self, project_id: int, euid: int) -> bool:
        # The write transaction already holds SQLite's single write lock.
        return self.has_user(project_id, euid)

    def find_identity(self, project_id: int, name: str, value: str) -> int | None:
        row = self._one(
            "SELECT euid FROM identities WHERE project_id = ? AND name = ? AND value = ?",
            (project_id, name, value),
        )
        return None if row is None else int(row[0])

    def bind_identity(self, project_id: int, name: str, value: str, euid: int) -> int:
        self._c.execute(
            "INSERT INTO identities (project_id, name, value, euid) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (project_id, name, value, euid),
        )
        bound = self.find_identity(project_id, name, value)
        assert bound is not None
        return bound

    def user_identities(self, project_id: int, euid: int) -> list[tuple[str, str]]:
        rows = self._c.execute(
            "SELECT name, value FROM identities WHERE project_id = ? AND euid = ?"
            " ORDER BY name, value",
            (project_id, euid),
        )
        return [(name, value) for name, value in rows]

    # Values

    def get_values(
        self, project_id: int, euid: int, names: Sequence[str] | None = None
    ) -> dict[str, StoredValue]:
        sql = "SELECT name, type, value FROM user_values WHERE project_id = ? AND euid = ?"
        params: tuple[Any, ...] = (project_id, euid)
        if names is not None:
            if not names:
                return {}
            sql += f" AND name IN ({','.join('?' * len(names))})"
            params += tuple(names)
        rows = self._c.execute(sql + " ORDER BY name", params)
        return {name: StoredValue(AttrType(kind), text) for name, kind, text in rows}

    def lock_values(
        self, wanted: Mapping[UserKey, Collection[str]]
    ) -> dict[UserKey, dict[str, StoredValue]]:
        # The write transaction (BEGIN IMMEDIATE) already holds the database: no row locks.
        # One statement per project: its users in the batch, joined to the values of every
        # name the batch wants (filtered per user below). json_each keeps the SQL text
        # constant, so the statement is prepared once; the rows come back as one JSON
        # array, so the writer thread lets go of the GIL once (sqlite3 releases it around
        # every step, and each release hands the GIL to the event loop and back).
        by_project: dict[int, list[int]] = {}
        for pid, euid in wanted:
            by_project.setdefault(pid, []).append(euid)
        found: dict[UserKey, dict[str, StoredValue]] = {}
        for pid, euids in by_project.items():
            names = sorted({n for euid in euids for n in wanted[pid, euid]})
            (rows,) = self._c.execute(
                "SELECT json_group_array(json_array(u.euid, v.name, v.type, v.value))"
                " FROM users u LEFT JOIN user_values v"
                " ON v.project_id = u.project_id AND v.euid = u.euid"
                " AND v.name IN (SELECT value FROM json_each(?2))"
                " WHERE u.euid IN (SELECT value FROM json_each(?1)) AND u.project_id = ?3",
                (_JSON.encode(euids), _JSON.encode(names), pid),
            ).fetchone()
            for euid, name, kind, text in _ROWS.decode(rows):
                values = found.get((pid, euid))
                if values is None:
                    values = found[pid, euid] = {}
                if name is not None and name in wanted[pid, euid]:
                    values[name] = StoredValue(_TYPES[kind], text)
        return found

    def write_values(
        self, puts: Mapping[ValueKey, StoredValue], deletes: Collection[ValueKey]
    ) -> None:
        if puts:
            stamp = time.time_ns() // 1_000_000
            self._c.executemany(
                "INSERT INTO user_values (project_id, euid, name, type, value, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, euid, name)"
                " DO UPDATE SET type = excluded.type, value = excluded.value,"
                " updated_at = excluded.updated_at",
                [(p, e, n, v.type.value, v.text, stamp) for (p, e, n), v in puts.items()],
            )
        if deletes:
            self._c.executemany(
                "DELETE FROM user_values WHERE project_id = ? AND euid = ? AND name = ?",
                list(deletes),
            )

    # Contacts

    def get_contacts(self, project_id: int, euid: int) -> dict[str, str]:
        rows = self._c.execute(
            "SELECT name, value FROM contacts WHERE project_id = ? AND euid = ? ORDER BY name",
            (project_id, euid),
        )
        return dict(rows.fetchall())

    def bind_contact(self, project_id: int, euid: int, name: str, value: str) -> int:
        # The write transaction holds SQLite's single write lock: check, then write.
        row = self._one(
            "SELECT euid FROM contacts WHERE project_id = ? AND name = ? AND value = ?",
            (project_id, name, value),
        )
        if row is not None:
            return int(row[0])
        self._c.execute(
            "INSERT INTO contacts (project_id, euid, name, value, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, euid, name)"
            " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (project_id, euid, name, value, time.time_ns() // 1_000_000),
        )
        return euid

    def clear_contact(self, project_id: int, euid: int, name: str) -> None:
        self._c.execute(
            "DELETE FROM contacts WHERE project_id = ? AND euid = ? AND name = ?",
            (project_id, euid, name),
        )

    # Events

    def existing_users(self, project_id: int, euids: Sequence[int]) -> set[int]:
        if not euids:
            return set()
        marks = ",".join("?" * len(euids))
        rows = self._c.execute(
            f"SELECT euid FROM users WHERE project_id = ? AND euid IN ({marks})",
            (project_id, *euids),
        )
        return {int(r[0]) for r in rows}

    def define_events(self, project_id: int, names: Sequence[str]) -> None:
        created = _now()
        self._c.executemany(
            "INSERT INTO event_definitions (project_id, name, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (project_id, name) DO NOTHING",
            [(project_id, n, created) for n in names],
        )

    def list_events_defined(self, project_id: int) -> list[tuple[str, str]]:
        rows = self._c.execute(
            "SELECT name, created_at FROM event_definitions WHERE project_id = ? ORDER BY name",
            (project_id,),
        )
        return [(name, created) for name, created in rows]

    def define_event_property(
        self, project_id: int, event_name: str, name: str, kind: AttrType
    ) -> AttrType:
        self.define_events(project_id, [event_name])
        self._c.execute(
            "INSERT INTO event_properties (project_id, event_name, name, type, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, event_name, name) DO NOTHING",
            (project_id, event_name, name, kind.value, _now()),
        )
        return self.event_property_types(project_id, event_name, [name])[name]

    def event_property_types(
        self, project_id: int, event_name: str, names: Sequence[str]
    ) -> dict[str, AttrType]:
        if not names:
            return {}
        rows = self._c.execute(
            "SELECT name, type FROM event_properties WHERE project_id = ? AND event_name = ?"
            f" AND name IN ({','.join('?' * len(names))})",
            (project_id, event_name, *names),
        )
        return {name: AttrType(kind) for name, kind in rows}

    def list_event_properties(
        self, project_id: int, event_name: str | None
    ) -> list[tuple[str, str, AttrType, str]]:
        sql = "SELECT event_name, name, type, created_at FROM event_properties WHERE project_id = ?"
        params: tuple[Any, ...] = (project_id,)
        if event_name is not None:
            sql += " AND event_name = ?"
            params += (event_name,)
        rows = self._c.execute(sql + " ORDER BY event_name, name", params)
        return [(e, n, AttrType(t), c) for e, n, t, c in rows]

    def known_random_ids(self, project_id: int, random_ids: Sequence[str]) -> set[str]:
        if not random_ids:
            return set()
        rows = self._c.execute(
            "SELECT random_id FROM events WHERE project_id = ?"
            f" AND random_id IN ({','.join('?' * len(random_ids))})",
            (project_id, *random_ids),
        )
        return {r[0] for r in rows}

    def insert_events(self, project_id: int, events: Sequence[NewEvent]) -> int:
        received = time.time_ns() // 1_000_000
        cur = self._c.executemany(
            "INSERT INTO events (project_id, euid, event_name, itime, random_id, app_key,"
            " properties, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (project_id, random_id) DO NOTHING",
            [
                (
                    project_id,
                    e.euid,
                    e.event_name,
                    e.itime,
                    e.random_id,
                    e.app_key,
                    e.properties,
                    received,
                )
                for e in events
            ],
        )
        return cur.rowcount

    def list_events(
        self,
        project_id: int,
        euid: int,
        *,
        since: int | None,
        until: int | None,
        before: tuple[int, int] | None,
        limit: int,
    ) -> list[StoredEvent]:
        sql = (
            "SELECT euid, event_name, itime, random_id, app_key, properties, id, received_at"
            " FROM events WHERE project_id = ? AND euid = ?"
        )
        params: list[Any] = [project_id, euid]
        if since is not None:
            sql += " AND itime >= ?"
            params.append(since)
        if until is not None:
            sql += " AND itime < ?"
            params.append(until)
        if before is not None:
            sql += " AND (itime < ? OR (itime = ? AND id < ?))"
            params += [before[0], before[0], before[1]]
        sql += " ORDER BY itime DESC, id DESC LIMIT ?"
        params.append(limit)
        return [StoredEvent(*row) for row in self._c.execute(sql, params)]

    def delete_events_before(self, project_id: int, cutoff: int, limit: int) -> int:
        cur = self._c.execute(
            "DELETE FROM events WHERE id IN (SELECT id FROM events"
            " WHERE project_id = ? AND itime < ? ORDER BY itime LIMIT ?)",
            (project_id, cutoff, limit),
        )
        return cur.rowcount

    def set_event_retention(self, project_id: int, days: int | None) -> None:
        self._c.execute(
            "UPDATE projects SET event_retention_days = ? WHERE id = ?", (days, project_id)
        )

    def event_retention(self) -> dict[int, int]:
        rows = self._c.execute(
            "SELECT id, event_retention_days FROM projects"
            " WHERE event_retention_days IS NOT NULL ORDER BY id"
        )
        return {int(pid): int(days) for pid, days in rows}

    # Idempotency keys

    def get_idempotent(self, datasource_id: int, key: str, now_ms: int) -> tuple[str, bytes] | None:
        row = self._one(
            "SELECT fingerprint, result FROM idempotency_keys"
            " WHERE datasource_id = ? AND key = ? AND expires_at > ?",
            (datasource_id, key, now_ms),
        )
        return None if row is None else (str(row[0]), bytes(row[1]))

    def put_idempotent(
        self, datasource_id: int, key: str, fingerprint: str, result: bytes, expires_ms: int
    ) -> None:
        self._c.execute(
            "INSERT INTO idempotency_keys (datasource_id, key, fingerprint, result, expires_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (datasource_id, key) DO UPDATE SET"
            " fingerprint = excluded.fingerprint, result = excluded.result,"
            " expires_at = excluded.expires_at",
            (datasource_id, key, fingerprint, result, expires_ms),
        )

    def sweep_idempotent(self, now_ms: int, limit: int) -> int:
        cur = self._c.execute(
            "DELETE FROM idempotency_keys WHERE (datasource_id, key) IN"
            " (SELECT datasource_id, key FROM idempotency_keys WHERE expires_at <= ? LIMIT ?)",
            (now_ms, limit),
        )
        return cur.rowcount

    def count_rows(self) -> dict[str, int]:
        return {t: int(self._one(f"SELECT count(*) FROM {t}")[0]) for t in TABLE_COLUMNS}

    def dump_rows(self, table: str, chunk: int = 1000) -> Iterator[list[tuple[Any, ...]]]:
        columns = ", ".join(TABLE_COLUMNS[table])
        cur = self._c.execute(f"SELECT {columns} FROM {table} ORDER BY {TABLE_KEYS[table]}")
        while rows := cur.fetchmany(chunk):
            yield rows

    def load_rows(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        columns = TABLE_COLUMNS[table]
        marks = ", ".join("?" * len(columns))
        self._c.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
        )  # AUTOINCREMENT's counter follows explicit EUIDs by itself


def _run_jobs(
    conn: sqlite3.Connection, jobs: Sequence[Callable[[Transaction], Any]], *, savepoints: bool
) -> list[JobResult] | None:
    """Run the jobs of a batch in the open transaction, each one's failure its own answer.

    Without ``savepoints`` (the fast path: two statements less per job) a failed job must
    not have written anything, which ``total_changes`` tells; when one has, this returns
    None and the caller runs the batch again with a savepoint per job. Jobs decide before
    they write, so that slow path is for failures of the storage, not rejected input.
    """
    tx = SqliteTransaction(conn)
    results: list[JobResult] = []
    for job in jobs:
        if savepoints:
            conn.execute("SAVEPOINT job")
        changes = conn.total_changes
        try:
            results.append(job(tx))
        except _FATAL:
            raise
        except Exception as exc:  # one job's failure is its own answer
            if savepoints:
                conn.execute("ROLLBACK TO job")
            elif conn.total_changes != changes:
                return None
            results.append(exc)
        if savepoints:
            conn.execute("RELEASE job")
    return results


class SqliteStorage(Storage):
    def __init__(self, path: str) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        with _translated():
            self._writer = _connect(path)
        try:  # the group-commit read passes its keys as JSON (json_each)
            self._writer.execute("SELECT value FROM json_each('[1]')").fetchall()
        except sqlite3.DatabaseError:
            self._writer.close()
            raise StorageUnavailable(
                f"SQLite {sqlite3.sqlite_version} lacks the JSON functions userprops needs"
                " (built in since SQLite 3.38)"
            ) from None

    def migrate(self, *, dry_run: bool = False) -> list[str]:
        from userprops.storage import migrations

        with self._write_lock, _translated():
            conn = self._writer
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            # Holding the write lock while reading what is applied: a concurrent
            # process either finished before us or waits for our commit.
            conn.execute("BEGIN IMMEDIATE")
            try:
                done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
                pending = [m for m in migrations("sqlite") if m.version not in done]
                for m in [] if dry_run else pending:
                    for statement in _statements(m.sql):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        (m.version, m.name, _now()),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return [f"{m.version:04d}_{m.name}" for m in pending]

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._write_lock, _translated():
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteTransaction(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
            self._readers.append(conn)
        return conn

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        with _translated():
            conn = self._reader()
            conn.execute("BEGIN")
            try:
                yield SqliteTransaction(conn)
            finally:
                conn.execute("COMMIT")

    def read_users(self, keys: Sequence[UserKey]) -> list[dict[str, StoredValue] | None]:
        if not keys:
            return []
        # One statement outside an explicit transaction (its own snapshot); the rows come
        # back as one JSON array: one step, so the GIL is let go once (see lock_values).
        with _translated():
            (rows,) = (
                self._reader()
                .execute(
                    "SELECT json_group_array(json_array(k.key, v.name, v.type, v.value))"
                    " FROM json_each(?) AS k"
                    " JOIN users u ON u.euid = k.value ->> 1 AND u.project_id = k.value ->> 0"
                    " LEFT JOIN user_values v"
                    " ON v.project_id = u.project_id AND v.euid = u.euid",
                    (_JSON.encode(keys),),
                )
                .fetchone()
            )
        return users_from_rows(len(keys), _ROWS.decode(rows))

    def run_batch(self, jobs: Sequence[Callable[[Transaction], Any]]) -> list[JobResult]:
        with self._write_lock, _translated():
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                results = _run_jobs(conn, jobs, savepoints=False)
                if results is None:
                    conn.execute("ROLLBACK")
                    conn.execute("BEGIN IMMEDIATE")
                    results = _run_jobs(conn, jobs, savepoints=True)
                    assert results is not None
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return results

    def ping(self) -> None:
        with _translated():
            self._reader().execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._write_lock:
            self._writer.close()
        for conn in self._readers:
            try:
                conn.close()
            except sqlite3.ProgrammingError:  # created in another thread that still uses it
                pass
        self._readers.clear()
