"""The SQL both backends share: :class:`SqlTransaction`, the statements of the storage
contract written once, in the dialect SQLite 3.38+ and PostgreSQL 15 have in common.

Statements are written with ``?`` placeholders; a backend says how its driver spells them
(:attr:`SqlTransaction.placeholder`), how a list parameter is matched (:meth:`_in`), how
names sort byte-wise (:attr:`SqlTransaction.collate`) and how a row is locked
(:attr:`SqlTransaction.for_update`, or skipped when another transaction holds it:
:attr:`SqlTransaction.skip_locked`). Each backend module keeps only what truly differs:
its locking and batching of the group-commit read and write, event inserts in bulk, and
copying rows between databases. Uniqueness under concurrent writers is the database's:
``INSERT ... ON CONFLICT DO NOTHING RETURNING`` then a read of the winner (a new
statement, so under PostgreSQL's READ COMMITTED it sees that winner's commit). The
statements of webhooks and their deliveries are in :mod:`userprops.storage.sql_webhooks`.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import msgspec

from userprops.clock import now_ms, now_text
from userprops.errors import Conflict, ProjectNotFound
from userprops.schema import AttrType, SchemaMode
from userprops.storage.base import (
    TABLE_COLUMNS,
    AuditEntry,
    DataSource,
    IdentityKey,
    NewChange,
    Operator,
    Project,
    StoredChange,
    StoredEvent,
    StoredValue,
    Transaction,
)
from userprops.storage.sql_segments import SegmentStatements
from userprops.storage.sql_webhooks import WebhookStatements

_TYPES = {kind.value: kind for kind in AttrType}
_JSON = msgspec.json.Encoder()


class SqlTransaction(WebhookStatements, SegmentStatements, Transaction, abc.ABC):
    """The shared statements; subclasses give the dialect and the driver. Those of
    webhooks are in :class:`~userprops.storage.sql_webhooks.WebhookStatements`, those of
    segments in :class:`~userprops.storage.sql_segments.SegmentStatements`."""

    placeholder: ClassVar[str] = "?"
    """How the driver spells a positional parameter."""
    collate: ClassVar[str] = ""
    """Appended to a name in ORDER BY, so that names sort by code point on every backend."""
    for_update: ClassVar[str] = ""
    """Appended to a SELECT that takes the rows it reads for the rest of the transaction."""
    skip_locked: ClassVar[str] = ""
    """Appended to a SELECT that takes the rows it reads, leaving out rows another
    transaction holds instead of waiting for them (a backend with one writer: nothing)."""
    unique_violation: ClassVar[type[Exception]]
    """The driver's error for a UNIQUE constraint violated by an INSERT or UPDATE."""

    def __init__(self) -> None:
        # Users this transaction created: a lost identity race removes its orphan.
        self._created: set[int] = set()

    # The driver

    @abc.abstractmethod
    def _run(self, sql: str, params: Sequence[Any]) -> Any:
        """Execute one statement (in the driver's placeholder style); its cursor."""

    @abc.abstractmethod
    def _run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Execute one statement once per row of parameters."""

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._run(_dialect(sql, self.placeholder), params)

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._execute(sql, params).fetchone()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self._execute(sql, params).fetchall())

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._run_many(_dialect(sql, self.placeholder), rows)

    def _in(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` + the first item matches any of ``values`` (never empty); the
        parameters to add. The default spreads them as ``IN (?, ?, ...)``."""
        return f" IN ({', '.join('?' * len(values))})", list(values)

    def _in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` matches any of ``values``, passed as one JSON parameter (so a list
        of any length is one parameter and the statement's text stays the same)."""
        values_json = _JSON.encode(list(values)).decode()
        return f"{column} IN (SELECT value FROM json_each(?))", [values_json]

    # Projects and data sources

    _PROJECT = "SELECT id, slug, schema_mode, timezone, created_at FROM projects"

    @staticmethod
    def _project(row: Any) -> Project | None:
        if row is None:
            return None
        return Project(row[0], row[1], SchemaMode(row[2]), row[3], row[4])

    def create_project(self, slug: str, schema_mode: SchemaMode, timezone: str) -> Project:
        created = now_text()
        row = self._one(
            "INSERT INTO projects (slug, schema_mode, timezone, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (slug) DO NOTHING RETURNING id",
            (slug, schema_mode.value, timezone, created),
        )
        if row is None:
            raise Conflict(f"project {slug!r} already exists")
        self._execute("INSERT INTO feed_heads (project_id) VALUES (?)", (row[0],))
        return Project(int(row[0]), slug, schema_mode, timezone, created)

    def get_project(self, slug: str) -> Project | None:
        return self._project(self._one(self._PROJECT + " WHERE slug = ?", (slug,)))

    def get_project_by_id(self, project_id: int) -> Project | None:
        return self._project(self._one(self._PROJECT + " WHERE id = ?", (project_id,)))

    def list_projects(self) -> list[Project]:
        rows = self._all(self._PROJECT + " ORDER BY id")
        return [p for p in map(self._project, rows) if p is not None]

    def update_project(
        self, project_id: int, *, schema_mode: SchemaMode | None, timezone: str | None
    ) -> None:
        self._execute(
            "UPDATE projects SET schema_mode = coalesce(?, schema_mode),"
            " timezone = coalesce(?, timezone) WHERE id = ?",
            (None if schema_mode is None else schema_mode.value, timezone, project_id),
        )

    _DATASOURCE = (
        "SELECT id, project_id, name, api_key, secret_hash, enabled, created_at FROM datasources"
    )

    @staticmethod
    def _datasource(row: Any) -> DataSource:
        return DataSource(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])

    def create_datasource(
        self, project_id: int, name: str, api_key: str, secret_hash: str
    ) -> DataSource:
        if self.get_project_by_id(project_id) is None:  # projects are never deleted
            raise ProjectNotFound(f"no project with id {project_id}")
        created = now_text()
        row = self._one(
            "INSERT INTO datasources (project_id, name, api_key, secret_hash, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
            (project_id, name, api_key, secret_hash, created),
        )
        if row is None:
            raise Conflict(f"data source {name!r} already exists in this project")
        return DataSource(int(row[0]), project_id, name, api_key, secret_hash, True, created)

    def get_datasource(self, api_key: str) -> DataSource | None:
        row = self._one(self._DATASOURCE + " WHERE api_key = ?", (api_key,))
        return None if row is None else self._datasource(row)

    def list_datasources(self, project_id: int | None) -> list[DataSource]:
        if project_id is None:
            rows = self._all(self._DATASOURCE + " ORDER BY id")
        else:
            rows = self._all(self._DATASOURCE + " WHERE project_id = ? ORDER BY id", (project_id,))
        return [self._datasource(r) for r in rows]

    def update_datasource(
        self, api_key: str, *, enabled: bool | None = None, secret_hash: str | None = None
    ) -> bool:
        cur = self._execute(
            "UPDATE datasources SET enabled = coalesce(?, enabled),"
            " secret_hash = coalesce(?, secret_hash) WHERE api_key = ?",
            (enabled, secret_hash, api_key),
        )
        return int(cur.rowcount) > 0

    # Attribute definitions

    def define_attribute(self, project_id: int, name: str, kind: AttrType) -> AttrType:
        self._execute(
            "INSERT INTO attributes (project_id, name, type, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (project_id, name) DO NOTHING",
            (project_id, name, kind.value, now_text()),
        )
        row = self._one(
            "SELECT type FROM attributes WHERE project_id = ? AND name = ?", (project_id, name)
        )
        return AttrType(row[0])

    def attribute_types(self, project_id: int, names: Sequence[str]) -> dict[str, AttrType]:
        if not names:
            return {}
        match, params = self._in(names)
        rows = self._all(
            "SELECT name, type FROM attributes WHERE project_id = ? AND name" + match,
            (project_id, *params),
        )
        return {name: AttrType(kind) for name, kind in rows}

    def list_attributes(self, project_id: int) -> list[tuple[str, AttrType, str]]:
        rows = self._all(
            "SELECT name, type, created_at FROM attributes WHERE project_id = ?"
            f" ORDER BY name{self.collate}",
            (project_id,),
        )
        return [(name, AttrType(kind), created) for name, kind, created in rows]

    # Users and identities

    def create_user(self, project_id: int) -> int:
        row = self._one(
            "INSERT INTO users (project_id, created_at) VALUES (?, ?) RETURNING euid",
            (project_id, now_text()),
        )
        euid = int(row[0])
        self._created.add(euid)
        return euid

    def user_project(self, euid: int) -> int | None:
        row = self._one("SELECT project_id FROM users WHERE euid = ?", (euid,))
        return None if row is None else int(row[0])

    def has_user(self, project_id: int, euid: int) -> bool:
        row = self._one("SELECT 1 FROM users WHERE euid = ? AND project_id = ?", (euid, project_id))
        return row is not None

    def lock_user(self, project_id: int, euid: int) -> bool:
        row = self._one(
            "SELECT 1 FROM users WHERE euid = ? AND project_id = ?" + self.for_update,
            (euid, project_id),
        )
        return row is not None

    def find_identity(self, project_id: int, name: str, value: str) -> int | None:
        row = self._one(
            "SELECT euid FROM identities WHERE project_id = ? AND name = ? AND value = ?",
            (project_id, name, value),
        )
        return None if row is None else int(row[0])

    def resolve_identities(
        self, keys: Sequence[IdentityKey], created: list[int] | None = None
    ) -> dict[IdentityKey, int]:
        # One value at a time: on SQLite each statement is a call into the library, no
        # round trip (PostgreSQL does them all in a few statements).
        resolved: dict[IdentityKey, int] = {}
        for key in dict.fromkeys(keys):
            pid, name, value = key
            euid = self.find_identity(pid, name, value)
            if euid is None:
                new = self.create_user(pid)
                euid = self.bind_identity(pid, name, value, new)
                if euid == new and created is not None:
                    created.append(new)
            resolved[key] = euid
        return resolved

    def list_users(self, project_id: int, after: int, limit: int) -> list[int]:
        rows = self._all(
            "SELECT euid FROM users WHERE project_id = ? AND euid > ? ORDER BY euid LIMIT ?",
            (project_id, after, limit),
        )
        return [int(r[0]) for r in rows]

    def erase_user(self, project_id: int, euid: int) -> bool:
        if not self.lock_user(project_id, euid):
            return False
        self._erase_members(project_id, euid)
        for table in (  # constants
            "user_values",
            "user_list_items",
            "contacts",
            "events",
            "identities",
        ):
            self._execute(
                f"DELETE FROM {table} WHERE project_id = ? AND euid = ?", (project_id, euid)
            )
        self._execute(
            "UPDATE changes SET old = NULL, new = NULL WHERE project_id = ? AND euid = ?",
            (project_id, euid),
        )
        self._execute("DELETE FROM users WHERE euid = ? AND project_id = ?", (euid, project_id))
        return True

    def _erase_members(self, project_id: int, euid: int) -> None:
        """Remove the user from every saved segment (its rows of ``segment_members``)."""
        self._execute(
            "DELETE FROM segment_members WHERE project_id = ? AND euid = ?", (project_id, euid)
        )

    def bind_identity(self, project_id: int, name: str, value: str, euid: int) -> int:
        row = self._one(
            "INSERT INTO identities (project_id, name, value, euid) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING RETURNING euid",
            (project_id, name, value, euid),
        )
        if row is not None:
            return int(row[0])
        # Another writer bound the value first (ON CONFLICT waited for its commit).
        bound = self.find_identity(project_id, name, value)
        assert bound is not None
        if euid in self._created:
            # The user we created for it would be an orphan: remove it unless it got
            # another identity meanwhile.
            self._execute(
                "DELETE FROM users WHERE euid = ? AND project_id = ? AND NOT EXISTS"
                " (SELECT 1 FROM identities WHERE project_id = ? AND euid = ?)",
                (euid, project_id, project_id, euid),
            )
        return bound

    def user_identities(self, project_id: int, euid: int) -> list[tuple[str, str]]:
        rows = self._all(
            "SELECT name, value FROM identities WHERE project_id = ? AND euid = ?"
            f" ORDER BY name{self.collate}, value{self.collate}",
            (project_id, euid),
        )
        return [(name, value) for name, value in rows]

    def identities_of(
        self, project_id: int, euids: Sequence[int]
    ) -> dict[int, list[tuple[str, str]]]:
        if not euids:
            return {}
        match, params = self._in(euids)
        rows = self._all(
            "SELECT euid, name, value FROM identities WHERE project_id = ? AND euid"
            + match
            + f" ORDER BY euid, name{self.collate}, value{self.collate}",
            (project_id, *params),
        )
        found: dict[int, list[tuple[str, str]]] = {}
        for euid, name, value in rows:
            found.setdefault(int(euid), []).append((name, value))
        return found

    # Values

    def get_values(
        self, project_id: int, euid: int, names: Sequence[str] | None = None
    ) -> dict[str, StoredValue]:
        sql = "SELECT name, type, value, ts FROM user_values WHERE project_id = ? AND euid = ?"
        params: list[Any] = [project_id, euid]
        if names is not None:
            if not names:
                return {}
            match, more = self._in(names)
            sql += " AND name" + match
            params += more
        rows = self._all(sql + f" ORDER BY name{self.collate}", params)
        return {name: StoredValue(_TYPES[kind], text, ts) for name, kind, text, ts in rows}

    # Contacts

    def get_contacts(self, project_id: int, euid: int) -> dict[str, str]:
        rows = self._all(
            "SELECT name, value FROM contacts WHERE project_id = ? AND euid = ?"
            f" ORDER BY name{self.collate}",
            (project_id, euid),
        )
        return dict(rows)

    def find_contact(self, project_id: int, name: str, value: str) -> int | None:
        row = self._one(
            "SELECT euid FROM contacts WHERE project_id = ? AND name = ? AND value = ?",
            (project_id, name, value),
        )
        return None if row is None else int(row[0])

    def bind_contact(self, project_id: int, euid: int, name: str, value: str) -> int:
        holder = self.find_contact(project_id, name, value)
        if holder is not None:
            return holder
        # Another user may take the value concurrently: UNIQUE (project_id, name, value)
        # then fails this upsert (after that user's commit), which leaves nothing changed.
        self._execute("SAVEPOINT contact")
        try:
            self._execute(
                "INSERT INTO contacts (project_id, euid, name, value, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, euid, name)"
                " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (project_id, euid, name, value, now_ms()),
            )
        except self.unique_violation:
            self._execute("ROLLBACK TO SAVEPOINT contact")
            self._execute("RELEASE SAVEPOINT contact")
            holder = self.find_contact(project_id, name, value)
            assert holder is not None
            return holder
        self._execute("RELEASE SAVEPOINT contact")
        return euid

    def clear_contact(self, project_id: int, euid: int, name: str) -> None:
        self._execute(
            "DELETE FROM contacts WHERE project_id = ? AND euid = ? AND name = ?",
            (project_id, euid, name),
        )

    # Events

    def existing_users(self, project_id: int, euids: Sequence[int]) -> set[int]:
        if not euids:
            return set()
        match, params = self._in(euids)
        rows = self._all(
            "SELECT euid FROM users WHERE project_id = ? AND euid" + match, (project_id, *params)
        )
        return {int(r[0]) for r in rows}

    def define_events(self, project_id: int, names: Sequence[str]) -> None:
        created = now_text()
        self._many(
            "INSERT INTO event_definitions (project_id, name, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (project_id, name) DO NOTHING",
            [(project_id, n, created) for n in names],
        )

    def list_events_defined(self, project_id: int) -> list[tuple[str, str]]:
        rows = self._all(
            "SELECT name, created_at FROM event_definitions WHERE project_id = ?"
            f" ORDER BY name{self.collate}",
            (project_id,),
        )
        return [(name, created) for name, created in rows]

    def define_event_property(
        self, project_id: int, event_name: str, name: str, kind: AttrType
    ) -> AttrType:
        self.define_events(project_id, [event_name])
        self._execute(
            "INSERT INTO event_properties (project_id, event_name, name, type, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, event_name, name) DO NOTHING",
            (project_id, event_name, name, kind.value, now_text()),
        )
        return self.event_property_types(project_id, event_name, [name])[name]

    def event_property_types(
        self, project_id: int, event_name: str, names: Sequence[str]
    ) -> dict[str, AttrType]:
        if not names:
            return {}
        match, params = self._in(names)
        rows = self._all(
            "SELECT name, type FROM event_properties WHERE project_id = ? AND event_name = ?"
            " AND name" + match,
            (project_id, event_name, *params),
        )
        return {name: AttrType(kind) for name, kind in rows}

    def list_event_properties(
        self, project_id: int, event_name: str | None
    ) -> list[tuple[str, str, AttrType, str]]:
        sql = "SELECT event_name, name, type, created_at FROM event_properties WHERE project_id = ?"
        params: list[Any] = [project_id]
        if event_name is not None:
            sql += " AND event_name = ?"
            params.append(event_name)
        rows = self._all(sql + f" ORDER BY event_name{self.collate}, name{self.collate}", params)
        return [(e, n, AttrType(t), c) for e, n, t, c in rows]

    def known_random_ids(self, project_id: int, random_ids: Sequence[str]) -> set[str]:
        if not random_ids:
            return set()
        match, params = self._in(random_ids)
        rows = self._all(
            "SELECT random_id FROM events WHERE project_id = ? AND random_id" + match,
            (project_id, *params),
        )
        return {r[0] for r in rows}

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
        return [StoredEvent(*row) for row in self._all(sql, params)]

    def delete_events_before(self, project_id: int, cutoff: int, limit: int) -> int:
        cur = self._execute(
            "DELETE FROM events WHERE project_id = ? AND id IN (SELECT id FROM events"
            " WHERE project_id = ? AND itime < ? ORDER BY itime LIMIT ?)",
            (project_id, project_id, cutoff, limit),
        )
        return int(cur.rowcount)

    def set_event_retention(self, project_id: int, days: int | None) -> None:
        self._execute(
            "UPDATE projects SET event_retention_days = ? WHERE id = ?", (days, project_id)
        )

    def event_retention(self) -> dict[int, int]:
        rows = self._all(
            "SELECT id, event_retention_days FROM projects"
            " WHERE event_retention_days IS NOT NULL ORDER BY id"
        )
        return {int(pid): int(days) for pid, days in rows}

    # History and the change feed

    _CHANGE = "SELECT seq, euid, property, op, type, old, new, source, at FROM changes"

    @staticmethod
    def _change(row: Any) -> StoredChange:
        seq, euid, prop, op, kind, old, new, source, at = row
        return StoredChange(
            seq, euid, prop, op, None if kind is None else _TYPES[kind], old, new, source, at
        )

    def list_history(
        self,
        project_id: int,
        euid: int,
        *,
        prop: str | None,
        since: int | None,
        until: int | None,
        before: int | None,
        limit: int,
    ) -> list[StoredChange]:
        sql = self._CHANGE + " WHERE project_id = ? AND euid = ?"
        params: list[Any] = [project_id, euid]
        for condition, value in (
            (" AND property = ?", prop),
            (" AND at >= ?", since),
            (" AND at < ?", until),
            (" AND seq < ?", before),
        ):
            if value is not None:
                sql += condition
                params.append(value)
        rows = self._all(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit])
        return [self._change(r) for r in rows]

    def list_changes(self, project_id: int, after: int, limit: int) -> list[StoredChange]:
        rows = self._all(
            self._CHANGE + " WHERE project_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (project_id, after, limit),
        )
        return [self._change(r) for r in rows]

    def last_seq(self, project_id: int) -> int:
        row = self._one("SELECT last_seq FROM feed_heads WHERE project_id = ?", (project_id,))
        return 0 if row is None else int(row[0])

    def delete_changes_before(self, project_id: int, cutoff: int, limit: int) -> int:
        cur = self._execute(
            "DELETE FROM changes WHERE project_id = ? AND seq IN (SELECT seq FROM changes c"
            " WHERE project_id = ? AND at < ? AND seq <= coalesce((SELECT min(fanned_seq)"
            " FROM webhooks WHERE project_id = ? AND enabled), seq) AND NOT EXISTS"
            " (SELECT 1 FROM deliveries d WHERE d.project_id = ? AND d.seq = c.seq"
            " AND d.status <> 'delivered') ORDER BY seq LIMIT ?)",
            (project_id, project_id, cutoff, project_id, project_id, limit),
        )
        return int(cur.rowcount)

    def set_history_retention(self, project_id: int, days: int | None) -> None:
        self._execute(
            "UPDATE projects SET history_retention_days = ? WHERE id = ?", (days, project_id)
        )

    def history_retention(self) -> dict[int, int]:
        rows = self._all(
            "SELECT id, history_retention_days FROM projects"
            " WHERE history_retention_days IS NOT NULL ORDER BY id"
        )
        return {int(pid): int(days) for pid, days in rows}

    # Imports

    def import_checkpoint(self, project_id: int, name: str) -> tuple[int, str] | None:
        row = self._one(
            "SELECT lines_done, digest FROM import_checkpoints WHERE project_id = ? AND name = ?",
            (project_id, name),
        )
        return None if row is None else (int(row[0]), str(row[1]))

    def set_import_checkpoint(self, project_id: int, name: str, lines: int, digest: str) -> None:
        self._execute(
            "INSERT INTO import_checkpoints (project_id, name, lines_done, digest, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, name) DO UPDATE SET"
            " lines_done = excluded.lines_done, digest = excluded.digest,"
            " updated_at = excluded.updated_at",
            (project_id, name, lines, digest, now_ms()),
        )

    # The admin console

    _OPERATOR = "SELECT id, name, password_hash, created_at FROM operators"

    @staticmethod
    def _operator(row: Any) -> Operator | None:
        return None if row is None else Operator(int(row[0]), row[1], row[2], row[3])

    def create_operator(self, name: str, password_hash: str) -> Operator:
        created = now_text()
        row = self._one(
            "INSERT INTO operators (name, password_hash, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING RETURNING id",
            (name, password_hash, created),
        )
        if row is None:
            raise Conflict(f"operator {name!r} already exists")
        return Operator(int(row[0]), name, password_hash, created)

    def get_operator(self, name: str) -> Operator | None:
        return self._operator(self._one(self._OPERATOR + " WHERE name = ?", (name,)))

    def list_operators(self) -> list[Operator]:
        rows = self._all(self._OPERATOR + f" ORDER BY name{self.collate}")
        return [o for o in map(self._operator, rows) if o is not None]

    def _end_sessions(self, name: str) -> None:
        self._execute(
            "DELETE FROM console_sessions WHERE operator_id IN"
            " (SELECT id FROM operators WHERE name = ?)",
            (name,),
        )

    def delete_operator(self, name: str) -> bool:
        self._end_sessions(name)
        cur = self._execute("DELETE FROM operators WHERE name = ?", (name,))
        return int(cur.rowcount) > 0

    def set_operator_password(self, name: str, password_hash: str) -> bool:
        self._end_sessions(name)
        cur = self._execute(
            "UPDATE operators SET password_hash = ? WHERE name = ?", (password_hash, name)
        )
        return int(cur.rowcount) > 0

    def create_session(
        self, session_id: str, operator_id: int, created_at: int, expires_at: int
    ) -> None:
        row = self._one(
            "INSERT INTO console_sessions (id, operator_id, created_at, expires_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
            (session_id, operator_id, created_at, expires_at),
        )
        if row is None:
            raise Conflict("session exists")

    def session_operator(self, session_id: str, now_ms: int) -> Operator | None:
        row = self._one(
            "SELECT o.id, o.name, o.password_hash, o.created_at FROM console_sessions s"
            " JOIN operators o ON o.id = s.operator_id WHERE s.id = ? AND s.expires_at > ?",
            (session_id, now_ms),
        )
        return self._operator(row)

    def delete_session(self, session_id: str) -> None:
        self._execute("DELETE FROM console_sessions WHERE id = ?", (session_id,))

    def delete_expired_sessions(self, now_ms: int) -> int:
        cur = self._execute("DELETE FROM console_sessions WHERE expires_at <= ?", (now_ms,))
        return int(cur.rowcount)

    def console_key(self, name: str, candidate: str) -> str:
        self._execute(
            "INSERT INTO console_keys (name, value, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING",
            (name, candidate, now_text()),
        )
        return str(self._one("SELECT value FROM console_keys WHERE name = ?", (name,))[0])

    def record_audit(self, at: int, actor: str, action: str, target: str, details: str) -> None:
        self._execute(
            "INSERT INTO audit_log (at, actor, action, target, details) VALUES (?, ?, ?, ?, ?)",
            (at, actor, action, target, details),
        )

    def list_audit(self, before: int | None, limit: int) -> list[AuditEntry]:
        sql = "SELECT id, at, actor, action, target, details FROM audit_log"
        params: list[Any] = []
        if before is not None:
            sql += " WHERE id < ?"
            params.append(before)
        rows = self._all(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [AuditEntry(int(r[0]), int(r[1]), *r[2:]) for r in rows]

    def user_counts(self) -> dict[int, int]:
        rows = self._all("SELECT project_id, count(*) FROM users GROUP BY project_id")
        return {int(pid): int(n) for pid, n in rows}

    def change_counts(self, project_id: int, since: int) -> dict[int, int]:
        rows = self._all(
            "SELECT at / 60000, count(*) FROM changes WHERE project_id = ? AND at >= ?"
            " GROUP BY at / 60000",
            (project_id, since),
        )
        return {int(minute): int(n) for minute, n in rows}

    # Idempotency keys

    def _serialize_key(self, datasource_id: int, key: str) -> None:
        """Serialise transactions asking for one key until they end (see
        :meth:`get_idempotent`); SQLite's single writer already does."""

    def get_idempotent(self, datasource_id: int, key: str, now_ms: int) -> tuple[str, bytes] | None:
        self._serialize_key(datasource_id, key)
        row = self._one(
            "SELECT fingerprint, result FROM idempotency_keys"
            " WHERE datasource_id = ? AND key = ? AND expires_at > ?",
            (datasource_id, key, now_ms),
        )
        return None if row is None else (str(row[0]), bytes(row[1]))

    def put_idempotent(
        self, datasource_id: int, key: str, fingerprint: str, result: bytes, expires_ms: int
    ) -> None:
        self._execute(
            "INSERT INTO idempotency_keys (datasource_id, key, fingerprint, result, expires_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (datasource_id, key) DO UPDATE SET"
            " fingerprint = excluded.fingerprint, result = excluded.result,"
            " expires_at = excluded.expires_at",
            (datasource_id, key, fingerprint, result, expires_ms),
        )

    def sweep_idempotent(self, now_ms: int, limit: int) -> int:
        cur = self._execute(
            "DELETE FROM idempotency_keys WHERE (datasource_id, key) IN"
            " (SELECT datasource_id, key FROM idempotency_keys WHERE expires_at <= ? LIMIT ?)",
            (now_ms, limit),
        )
        return int(cur.rowcount)

    def count_rows(self) -> dict[str, int]:
        # Table names come from TABLE_COLUMNS, never from input.
        return {t: int(self._one(f"SELECT count(*) FROM {t}")[0]) for t in TABLE_COLUMNS}


@functools.lru_cache(maxsize=4096)
def _dialect(sql: str, placeholder: str) -> str:
    """``sql`` with its ``?`` placeholders spelt ``placeholder``. Shared statements hold
    no other ``?`` and, for drivers whose placeholder starts with ``%``, no ``%``."""
    if placeholder == "?":
        return sql
    assert "%" not in sql, sql
    return sql.replace("?", placeholder)


def by_project(changes: Sequence[NewChange]) -> list[tuple[int, list[NewChange]]]:
    """Changes grouped by project, in project id order (the order counter rows are
    taken in, so that two writers never wait for each other's), each in the order given."""
    grouped: dict[int, list[NewChange]] = {}
    for change in changes:
        grouped.setdefault(change.project_id, []).append(change)
    return sorted(grouped.items())
