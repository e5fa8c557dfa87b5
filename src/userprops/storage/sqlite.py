"""The embedded backend: one SQLite file in WAL mode with ``synchronous=FULL``.

One write connection, guarded by a lock (the group-commit writer and the CLI take turns);
one read connection per reading thread. SQLite allows one writer per file: run one server
process per database (the CLI may write beside it; it waits on ``busy_timeout``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec

from userprops.clock import now_ms, now_text
from userprops.errors import StorageUnavailable
from userprops.keys import sort_key
from userprops.schema import AttrType
from userprops.storage.base import (
    TABLE_COLUMNS,
    TABLE_KEYS,
    JobResult,
    LockedRead,
    NewChange,
    NewEvent,
    Storage,
    StoredValue,
    Transaction,
    UserKey,
    ValueKey,
    users_from_rows,
)
from userprops.storage.sql import SqlTransaction, by_project as _by_project

BUSY_TIMEOUT_MS = 5000
_JSON = msgspec.json.Encoder()
# (euid, name, type, value, ts); the last four are null for a user without the names wanted.
_ROWS = msgspec.json.Decoder(list[tuple[int, Any, Any, Any, Any]])
_ITEMS = msgspec.json.Decoder(list[str])  # a LIST value's text
_TRIPLES = msgspec.json.Decoder(list[tuple[int, int, int]])
_TYPES = {kind.value: kind for kind in AttrType}
_LIST = AttrType.LIST
# Errors of the database itself fail a whole batch; others (constraints) fail one job.
_FATAL = (sqlite3.OperationalError, sqlite3.InternalError, sqlite3.NotSupportedError)


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


class SqliteTransaction(SqlTransaction):
    """The shared statements on a sqlite3 connection, and what SQLite does its own way:
    the group-commit read and write (the write transaction already holds the database,
    so no row locks), events in bulk, and copying rows."""

    unique_violation = sqlite3.IntegrityError
    # Segment queries: probes and scans go by (attribute, EUID), ranges by (attribute,
    # key). Named, because the planner prefers the primary key for a probe, which costs
    # two to three times as much here (a wide row per value; docs/performance.md).
    key_index = " INDEXED BY user_values_by_key"
    user_index = " INDEXED BY user_values_by_user"
    join = "CROSS JOIN"  # SQLite's way to say: keep this order

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__()
        self._c = conn

    def _run(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        return self._c.execute(sql, params)

    def _run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._c.executemany(sql, rows)

    # Values

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
                "SELECT json_group_array(json_array(u.euid, v.name, v.type, v.value, v.ts))"
                " FROM users u LEFT JOIN user_values v"
                " ON v.project_id = u.project_id AND v.euid = u.euid"
                " AND v.name IN (SELECT value FROM json_each(?2))"
                " WHERE u.euid IN (SELECT value FROM json_each(?1)) AND u.project_id = ?3",
                (_JSON.encode(euids), _JSON.encode(names), pid),
            ).fetchone()
            for euid, name, kind, text, ts in _ROWS.decode(rows):
                values = found.get((pid, euid))
                if values is None:
                    values = found[pid, euid] = {}
                if name is not None and name in wanted[pid, euid]:
                    values[name] = StoredValue(_TYPES[kind], text, ts)
        return found

    def write_values(
        self,
        puts: Mapping[ValueKey, StoredValue],
        deletes: Collection[ValueKey],
        before: Mapping[ValueKey, StoredValue | None] | None = None,
    ) -> None:
        if puts:
            stamp = now_ms()
            self._c.executemany(
                "INSERT INTO user_values (project_id, euid, name, type, value, updated_at,"
                " sort_key, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (project_id, euid, name) DO UPDATE SET type = excluded.type,"
                " value = excluded.value, updated_at = excluded.updated_at,"
                " sort_key = excluded.sort_key, ts = excluded.ts",
                [
                    (p, e, n, v.type.value, v.text, stamp, sort_key(v.type, v.text), v.ts)
                    for (p, e, n), v in puts.items()
                ],
            )
            known = {} if before is None else before
            gained: list[tuple[int, int, str, str]] = []
            lost: list[tuple[int, int, str, str]] = []
            lists: list[tuple[int, int, str, str]] = []
            for key, v in puts.items():
                if v.type is not _LIST:
                    continue
                if key not in known:
                    lists.append((*key, v.text))
                    continue
                old = known[key]  # the elements it gains and loses, from the stored value
                items = set(_ITEMS.decode(v.text))
                had = (
                    set(_ITEMS.decode(old.text)) if old is not None and old.type is _LIST else set()
                )
                gained += [(*key, item) for item in items - had]
                lost += [(*key, item) for item in had - items]
            if lost:
                self._c.executemany(
                    "DELETE FROM user_list_items WHERE project_id = ? AND euid = ? AND name = ?"
                    " AND item = ?",
                    lost,
                )
            if gained:
                self._c.executemany(
                    "INSERT INTO user_list_items (project_id, euid, name, item)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    gained,
                )
            if lists:  # stored values not read: those gone removed, new ones added
                self._c.executemany(
                    "DELETE FROM user_list_items WHERE project_id = ?1 AND euid = ?2"
                    " AND name = ?3 AND item NOT IN (SELECT value FROM json_each(?4))",
                    lists,
                )
                self._c.executemany(
                    "INSERT INTO user_list_items (project_id, euid, name, item)"
                    " SELECT ?1, ?2, ?3, value FROM json_each(?4) WHERE true"
                    " ON CONFLICT DO NOTHING",
                    lists,
                )
        if deletes:
            keys = list(deletes)
            self._c.executemany(
                "DELETE FROM user_values WHERE project_id = ? AND euid = ? AND name = ?", keys
            )
            self._c.executemany(
                "DELETE FROM user_list_items WHERE project_id = ? AND euid = ? AND name = ?", keys
            )

    def lock_segment_values(
        self,
        wanted: Mapping[UserKey, Collection[str]],
        projects: Collection[int],
        members: Collection[tuple[int, int, int]],
    ) -> LockedRead:
        # The write transaction holds the database: three plain reads.
        versions = self.segments_versions(projects)
        values = self.lock_values(wanted)
        held: set[tuple[int, int, int]] = set()
        if members:
            (rows,) = self._c.execute(
                "SELECT json_group_array(json_array(m.project_id, m.euid, m.segment_id))"
                " FROM json_each(?) AS k JOIN segment_members m"
                " ON m.project_id = k.value ->> 0 AND m.segment_id = k.value ->> 2"
                " AND m.euid = k.value ->> 1",
                (_JSON.encode(list(members)),),
            ).fetchone()
            held = {(p, e, s) for p, e, s in _TRIPLES.decode(rows)}
        return LockedRead(values, versions, held)

    # History

    def record_changes(self, changes: Sequence[NewChange]) -> None:
        # The write transaction holds the database: seqs follow commit order by themselves.
        at = now_ms()
        for pid, rows in _by_project(changes):
            (last,) = self._c.execute(
                "UPDATE feed_heads SET last_seq = last_seq + ? WHERE project_id = ?"
                " RETURNING last_seq",
                (len(rows), pid),
            ).fetchone()
            first = last - len(rows) + 1
            self._c.executemany(
                "INSERT INTO changes (project_id, seq, euid, property, op, type, old, new,"
                " source, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (pid, seq, c.euid, c.property, c.op, c.type, c.old, c.new, c.source, at)
                    for seq, c in enumerate(rows, first)
                ],
            )

    # Events

    def insert_events(self, project_id: int, events: Sequence[NewEvent]) -> int:
        received = now_ms()
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

    # Bulk copy

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
                        (m.version, m.name, now_text()),
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
                    "SELECT json_group_array(json_array(k.key, v.name, v.type, v.value, v.ts))"
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

    def watch_changes(self, callback: Callable[[int], None]) -> None:
        """Nothing to watch: the only writer of a SQLite file is this server (the CLI
        beside it is caught by the feed's own periodic check)."""

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
