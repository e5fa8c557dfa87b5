"""The statements of the PostgreSQL backend: :class:`PostgresTransaction`, one method per
operation of the storage contract, each keyed by project (and user) as the contract says.

Uniqueness under concurrent writers is the server's: ``INSERT ... ON CONFLICT DO NOTHING``
then a read of the winner (a new statement, so under READ COMMITTED it sees that commit).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, LiteralString

import msgspec
import psycopg
from psycopg import sql

from userprops.errors import Conflict
from userprops.schema import AttrType, SchemaMode
from userprops.storage.base import (
    TABLE_COLUMNS,
    TABLE_KEYS,
    DataSource,
    NewEvent,
    Project,
    StoredEvent,
    StoredValue,
    Transaction,
    UserKey,
    ValueKey,
)

_TYPES = {kind.value: kind for kind in AttrType}


# The statements of the group-commit write (lock_values, write_values), one each per batch.
#
# Keys and values go as JSON arrays of rows (jsonb parameters, unpacked by the server):
# psycopg dumps a list parameter element by element in Python, ~30 times slower than
# encoding the whole batch with msgspec, for the same work on the server.
#
# Each key is looked up in a LATERAL subquery that the planner cannot flatten into a join,
# so every plan is a primary-key probe per key, whatever the planner believes of the
# table: a join against the keys becomes a hash join over every value when the table is
# new or small when the plan is made, and a prepared statement keeps that plan
# (docs/backends.md, "Statement plans"; tests/test_postgres_plans.py checks it).
#
# users [[project_id, euid], ...] sorted (project id, then EUID), and
# pairs [[project_id, euid, name], ...]:
# a function of migration 0004 (it locks, then reads with a snapshot taken once every lock
# is granted).
LOCK_VALUES: LiteralString = "SELECT * FROM userprops_lock_values(%s::jsonb, %s::jsonb)"
# deletes [[project_id, euid, name], ...] (found by key, deleted by row address), then
# updated_at and puts [[project_id, euid, name, type, value], ...].
WRITE_VALUES: LiteralString = (
    "WITH gone AS (DELETE FROM user_values AS v USING (SELECT x.ctid"
    " FROM (SELECT (r->>0)::bigint AS p, (r->>1)::bigint AS e, r->>2 AS n"
    " FROM jsonb_array_elements(%s::jsonb) AS r) AS k,"
    " LATERAL (SELECT ctid FROM user_values"
    " WHERE project_id = k.p AND euid = k.e AND name = k.n OFFSET 0) AS x) AS d"
    " WHERE v.ctid = d.ctid)"
    " INSERT INTO user_values (project_id, euid, name, type, value, updated_at)"
    " SELECT (r->>0)::bigint, (r->>1)::bigint, r->>2, r->>3, r->>4, %s"
    " FROM jsonb_array_elements(%s::jsonb) AS r"
    " ON CONFLICT (project_id, euid, name)"
    " DO UPDATE SET type = excluded.type, value = excluded.value,"
    " updated_at = excluded.updated_at"
)
# GET /v1/user/property for a batch of reads: keys [[project_id, euid], ...]; a row per
# value of each key's user (a NULL name when it has none), none when the user is not there.
READ_USERS: LiteralString = (
    "SELECT k.i - 1, v.name, v.type, v.value"
    " FROM (SELECT t.i, (t.r->>0)::bigint AS p, (t.r->>1)::bigint AS e"
    " FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS t(r, i)) AS k"
    " CROSS JOIN LATERAL (SELECT 1 FROM users"
    " WHERE users.euid = k.e AND users.project_id = k.p OFFSET 0) AS u"
    " LEFT JOIN LATERAL (SELECT name, type, value FROM user_values"
    " WHERE user_values.project_id = k.p AND user_values.euid = k.e OFFSET 0) AS v ON true"
)
_JSON = msgspec.json.Encoder()


def json_text(rows: Any) -> str:
    return _JSON.encode(rows).decode()


IDENTITY_COLUMNS = {"projects": "id", "datasources": "id", "users": "euid", "events": "id"}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class PostgresTransaction(Transaction):
    """The statements of one transaction on ``conn``.

    ``batch=True`` is the group-commit writer's transaction (:meth:`PostgresStorage.
    run_batch`), which saves two round trips per batch: ``BEGIN`` is not sent until the
    first statement, and goes with it when that is :meth:`lock_values`; the statement of
    :meth:`write_values` is deferred until the next statement, :meth:`end_job` or
    :meth:`commit`, which sends it with ``COMMIT``. The caller then calls :meth:`end_job`
    after each job but the last, and :meth:`commit` at the end, so that a deferred write
    fails within its own job.
    """

    def __init__(self, conn: psycopg.Connection[Any], *, batch: bool = False) -> None:
        self._conn = conn
        self._begin = batch  # BEGIN not sent yet
        self._batch = batch
        self._deferred: tuple[LiteralString, tuple[Any, ...]] | None = None
        # Users this transaction created: a lost identity race removes its orphan.
        self._created: set[int] = set()

    @property
    def _c(self) -> psycopg.Connection[Any]:
        """The connection, once what was deferred (BEGIN, a write) has been sent."""
        if self._begin or self._deferred is not None:
            self._send_deferred()
        return self._conn

    def _send_deferred(self) -> None:
        """Send BEGIN and the deferred write, if not yet sent (queued, in a pipeline)."""
        if self._begin:
            self._begin = False
            self._conn.execute("BEGIN")
        if self._deferred is not None:
            query, params = self._deferred
            self._deferred = None
            self._conn.execute(query, params)

    def end_job(self) -> None:
        """Batch mode: send the deferred write, so that its errors are this job's."""
        if self._deferred is not None:
            self._send_deferred()

    def commit(self) -> None:
        """Batch mode: send the deferred write and COMMIT, in one round trip."""
        if self._deferred is None:
            if self._begin:  # no statement at all: nothing to commit
                self._begin = False
            else:
                self._conn.execute("COMMIT")
            return
        with self._conn.pipeline():
            self._send_deferred()
            self._conn.execute("COMMIT")

    def _one(self, query: LiteralString, params: Sequence[Any] = ()) -> Any:
        return self._c.execute(query, params).fetchone()

    def _all(
        self, query: LiteralString, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[Any]:
        return self._c.execute(query, params).fetchall()

    # Projects and data sources

    _PROJECT: LiteralString = "SELECT id, slug, schema_mode, timezone, created_at FROM projects"

    @staticmethod
    def _project(row: Any) -> Project | None:
        if row is None:
            return None
        return Project(row[0], row[1], SchemaMode(row[2]), row[3], row[4])

    def create_project(self, slug: str, schema_mode: SchemaMode, timezone: str) -> Project:
        created = now()
        row = self._one(
            "INSERT INTO projects (slug, schema_mode, timezone, created_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (slug) DO NOTHING RETURNING id",
            (slug, schema_mode.value, timezone, created),
        )
        if row is None:
            raise Conflict(f"project {slug!r} already exists")
        return Project(row[0], slug, schema_mode, timezone, created)

    def get_project(self, slug: str) -> Project | None:
        return self._project(self._one(self._PROJECT + " WHERE slug = %s", (slug,)))

    def get_project_by_id(self, project_id: int) -> Project | None:
        return self._project(self._one(self._PROJECT + " WHERE id = %s", (project_id,)))

    def list_projects(self) -> list[Project]:
        rows = self._all(self._PROJECT + " ORDER BY id")
        return [p for p in map(self._project, rows) if p is not None]

    def update_project(
        self, project_id: int, *, schema_mode: SchemaMode | None, timezone: str | None
    ) -> None:
        self._c.execute(
            "UPDATE projects SET schema_mode = coalesce(%s, schema_mode),"
            " timezone = coalesce(%s, timezone) WHERE id = %s",
            (None if schema_mode is None else schema_mode.value, timezone, project_id),
        )

    _DATASOURCE: LiteralString = (
        "SELECT id, project_id, name, api_key, secret_hash, enabled, created_at FROM datasources"
    )

    @staticmethod
    def _datasource(row: Any) -> DataSource:
        return DataSource(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])

    def create_datasource(
        self, project_id: int, name: str, api_key: str, secret_hash: str
    ) -> DataSource:
        created = now()
        row = self._one(
            "INSERT INTO datasources (project_id, name, api_key, secret_hash, created_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
            (project_id, name, api_key, secret_hash, created),
        )
        if row is None:
            raise Conflict(f"data source {name!r} already exists in this project")
        return DataSource(row[0], project_id, name, api_key, secret_hash, True, created)

    def get_datasource(self, api_key: str) -> DataSource | None:
        row = self._one(self._DATASOURCE + " WHERE api_key = %s", (api_key,))
        return None if row is None else self._datasource(row)

    def list_datasources(self, project_id: int | None) -> list[DataSource]:
        if project_id is None:
            rows = self._all(self._DATASOURCE + " ORDER BY id")
        else:
            rows = self._all(self._DATASOURCE + " WHERE project_id = %s ORDER BY id", (project_id,))
        return [self._datasource(r) for r in rows]

    def update_datasource(
        self, api_key: str, *, enabled: bool | None = None, secret_hash: str | None = None
    ) -> bool:
        cur = self._c.execute(
            "UPDATE datasources SET enabled = coalesce(%s, enabled),"
            " secret_hash = coalesce(%s, secret_hash) WHERE api_key = %s",
            (enabled, secret_hash, api_key),
        )
        return cur.rowcount > 0

    # Attribute definitions

    def define_attribute(self, project_id: int, name: str, kind: AttrType) -> AttrType:
        # A concurrent definer makes ON CONFLICT wait for its commit; the SELECT (a new
        # statement, a new snapshot under READ COMMITTED) then sees the winner's type.
        self._c.execute(
            "INSERT INTO attributes (project_id, name, type, created_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (project_id, name) DO NOTHING",
            (project_id, name, kind.value, now()),
        )
        row = self._one(
            "SELECT type FROM attributes WHERE project_id = %s AND name = %s", (project_id, name)
        )
        return AttrType(row[0])

    def attribute_types(self, project_id: int, names: Sequence[str]) -> dict[str, AttrType]:
        if not names:
            return {}
        rows = self._all(
            "SELECT name, type FROM attributes WHERE project_id = %s AND name = ANY(%s)",
            (project_id, list(names)),
        )
        return {name: AttrType(kind) for name, kind in rows}

    def list_attributes(self, project_id: int) -> list[tuple[str, AttrType, str]]:
        rows = self._all(
            "SELECT name, type, created_at FROM attributes WHERE project_id = %s"
            ' ORDER BY name COLLATE "C"',
            (project_id,),
        )
        return [(name, AttrType(kind), created) for name, kind, created in rows]

    # Users and identities

    def create_user(self, project_id: int) -> int:
        row = self._one(
            "INSERT INTO users (project_id, created_at) VALUES (%s, %s) RETURNING euid",
            (project_id, now()),
        )
        euid = int(row[0])
        self._created.add(euid)
        return euid

    def user_project(self, euid: int) -> int | None:
        row = self._one("SELECT project_id FROM users WHERE euid = %s", (euid,))
        return None if row is None else int(row[0])

    def has_user(self, project_id: int, euid: int) -> bool:
        row = self._one(
            "SELECT 1 FROM users WHERE euid = %s AND project_id = %s", (euid, project_id)
        )
        return row is not None

    def lock_user(self, project_id: int, euid: int) -> bool:
        row = self._one(
            "SELECT 1 FROM users WHERE euid = %s AND project_id = %s FOR UPDATE",
            (euid, project_id),
        )
        return row is not None

    def find_identity(self, project_id: int, name: str, value: str) -> int | None:
        row = self._one(
            "SELECT euid FROM identities WHERE project_id = %s AND name = %s AND value = %s",
            (project_id, name, value),
        )
        return None if row is None else int(row[0])

    def bind_identity(self, project_id: int, name: str, value: str, euid: int) -> int:
        row = self._one(
            "INSERT INTO identities (project_id, name, value, euid) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING euid",
            (project_id, name, value, euid),
        )
        if row is not None:
            return int(row[0])
        # Another process bound the value first (ON CONFLICT waited for its commit).
        bound = self.find_identity(project_id, name, value)
        assert bound is not None
        if euid in self._created:
            # The user we created for it would be an orphan: remove it unless it got
            # another identity meanwhile.
            self._c.execute(
                "DELETE FROM users WHERE euid = %s AND project_id = %s AND NOT EXISTS"
                " (SELECT 1 FROM identities WHERE project_id = %s AND euid = %s)",
                (euid, project_id, project_id, euid),
            )
        return bound

    def user_identities(self, project_id: int, euid: int) -> list[tuple[str, str]]:
        rows = self._all(
            "SELECT name, value FROM identities WHERE project_id = %s AND euid = %s"
            ' ORDER BY name COLLATE "C", value COLLATE "C"',
            (project_id, euid),
        )
        return [(name, value) for name, value in rows]

    # Values

    def get_values(
        self, project_id: int, euid: int, names: Sequence[str] | None = None
    ) -> dict[str, StoredValue]:
        if names is None:
            rows = self._all(
                "SELECT name, type, value FROM user_values WHERE project_id = %s AND euid = %s"
                ' ORDER BY name COLLATE "C"',
                (project_id, euid),
            )
        elif not names:
            return {}
        else:
            rows = self._all(
                "SELECT name, type, value FROM user_values WHERE project_id = %s AND euid = %s"
                ' AND name = ANY(%s) ORDER BY name COLLATE "C"',
                (project_id, euid, list(names)),
            )
        return {name: StoredValue(AttrType(kind), text) for name, kind, text in rows}

    def lock_values(
        self, wanted: Mapping[UserKey, Collection[str]]
    ) -> dict[UserKey, dict[str, StoredValue]]:
        # One statement for every project at once (a function of migration 0004: it locks
        # the users in the order given, then reads the wanted (user, name) pairs with a snapshot
        # taken once every lock is granted).
        if not wanted:
            return {}
        users = sorted(wanted)  # the contract's one order: project id, then EUID
        pairs = [(pid, euid, name) for pid, euid in users for name in wanted[pid, euid]]
        params = (json_text(users), json_text(pairs))
        if self._begin or self._deferred is not None:  # one round trip for all of them
            with self._conn.pipeline():
                self._send_deferred()
                cursor = self._conn.execute(LOCK_VALUES, params)
            rows = cursor.fetchall()
        else:
            rows = self._all(LOCK_VALUES, params)
        found: dict[UserKey, dict[str, StoredValue]] = {}
        for pid, euid, name, kind, text in rows:
            if name is None:
                found[pid, euid] = {}
            else:
                values = found.get((pid, euid))
                if values is not None:
                    values[name] = StoredValue(_TYPES[kind], text)
        return found

    def write_values(
        self, puts: Mapping[ValueKey, StoredValue], deletes: Collection[ValueKey]
    ) -> None:
        if puts or deletes:
            rows = [(p, e, n, v.type.value, v.text) for (p, e, n), v in puts.items()]
            stamp = time.time_ns() // 1_000_000
            params = (json_text(list(deletes)), stamp, json_text(rows))
            if self._batch:
                self.end_job()  # one deferred write at a time
                self._deferred = (WRITE_VALUES, params)
            else:
                self._c.execute(WRITE_VALUES, params)

    # Contacts

    def get_contacts(self, project_id: int, euid: int) -> dict[str, str]:
        rows = self._all(
            "SELECT name, value FROM contacts WHERE project_id = %s AND euid = %s"
            ' ORDER BY name COLLATE "C"',
            (project_id, euid),
        )
        return dict(rows)

    def _contact_holder(self, project_id: int, name: str, value: str) -> int | None:
        row = self._one(
            "SELECT euid FROM contacts WHERE project_id = %s AND name = %s AND value = %s",
            (project_id, name, value),
        )
        return None if row is None else int(row[0])

    def bind_contact(self, project_id: int, euid: int, name: str, value: str) -> int:
        holder = self._contact_holder(project_id, name, value)
        if holder is not None:
            return holder
        # Another user may take the value concurrently: UNIQUE (project_id, name, value)
        # then fails this upsert (after that user's commit), which leaves nothing changed.
        self._c.execute("SAVEPOINT contact")
        try:
            self._c.execute(
                "INSERT INTO contacts (project_id, euid, name, value, updated_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (project_id, euid, name)"
                " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (project_id, euid, name, value, time.time_ns() // 1_000_000),
            )
        except psycopg.errors.UniqueViolation:
            self._c.execute("ROLLBACK TO SAVEPOINT contact; RELEASE SAVEPOINT contact")
            holder = self._contact_holder(project_id, name, value)
            assert holder is not None
            return holder
        self._c.execute("RELEASE SAVEPOINT contact")
        return euid

    def clear_contact(self, project_id: int, euid: int, name: str) -> None:
        self._c.execute(
            "DELETE FROM contacts WHERE project_id = %s AND euid = %s AND name = %s",
            (project_id, euid, name),
        )

    # Events

    def existing_users(self, project_id: int, euids: Sequence[int]) -> set[int]:
        if not euids:
            return set()
        rows = self._all(
            "SELECT euid FROM users WHERE project_id = %s AND euid = ANY(%s)",
            (project_id, list(euids)),
        )
        return {int(r[0]) for r in rows}

    def define_events(self, project_id: int, names: Sequence[str]) -> None:
        if names:
            self._c.execute(
                "INSERT INTO event_definitions (project_id, name, created_at)"
                " SELECT %s, n, %s FROM unnest(%s::text[]) AS n"
                " ON CONFLICT (project_id, name) DO NOTHING",
                (project_id, now(), list(names)),
            )

    def list_events_defined(self, project_id: int) -> list[tuple[str, str]]:
        rows = self._all(
            "SELECT name, created_at FROM event_definitions WHERE project_id = %s"
            ' ORDER BY name COLLATE "C"',
            (project_id,),
        )
        return [(name, created) for name, created in rows]

    def define_event_property(
        self, project_id: int, event_name: str, name: str, kind: AttrType
    ) -> AttrType:
        self.define_events(project_id, [event_name])
        self._c.execute(
            "INSERT INTO event_properties (project_id, event_name, name, type, created_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (project_id, event_name, name) DO NOTHING",
            (project_id, event_name, name, kind.value, now()),
        )
        return self.event_property_types(project_id, event_name, [name])[name]

    def event_property_types(
        self, project_id: int, event_name: str, names: Sequence[str]
    ) -> dict[str, AttrType]:
        if not names:
            return {}
        rows = self._all(
            "SELECT name, type FROM event_properties WHERE project_id = %s AND event_name = %s"
            " AND name = ANY(%s)",
            (project_id, event_name, list(names)),
        )
        return {name: AttrType(kind) for name, kind in rows}

    def list_event_properties(
        self, project_id: int, event_name: str | None
    ) -> list[tuple[str, str, AttrType, str]]:
        rows = self._all(
            "SELECT event_name, name, type, created_at FROM event_properties"
            " WHERE project_id = %s AND (%s::text IS NULL OR event_name = %s)"
            ' ORDER BY event_name COLLATE "C", name COLLATE "C"',
            (project_id, event_name, event_name),
        )
        return [(e, n, AttrType(t), c) for e, n, t, c in rows]

    def known_random_ids(self, project_id: int, random_ids: Sequence[str]) -> set[str]:
        if not random_ids:
            return set()
        rows = self._all(
            "SELECT random_id FROM events WHERE project_id = %s AND random_id = ANY(%s)",
            (project_id, list(random_ids)),
        )
        return {r[0] for r in rows}

    def insert_events(self, project_id: int, events: Sequence[NewEvent]) -> int:
        if not events:
            return 0
        cur = self._c.execute(
            "INSERT INTO events (project_id, euid, event_name, itime, random_id, app_key,"
            " properties, received_at)"
            " SELECT %s, u, n, t, r, a, p, %s FROM unnest(%s::bigint[], %s::text[],"
            " %s::bigint[], %s::text[], %s::text[], %s::text[])"
            " WITH ORDINALITY AS e (u, n, t, r, a, p, i) ORDER BY i"
            " ON CONFLICT (project_id, random_id) DO NOTHING",
            (
                project_id,
                time.time_ns() // 1_000_000,
                [e.euid for e in events],
                [e.event_name for e in events],
                [e.itime for e in events],
                [e.random_id for e in events],
                [e.app_key for e in events],
                [e.properties for e in events],
            ),
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
        rows = self._all(
            "SELECT euid, event_name, itime, random_id, app_key, properties, id, received_at"
            " FROM events WHERE project_id = %(p)s AND euid = %(e)s"
            " AND (%(since)s::bigint IS NULL OR itime >= %(since)s)"
            " AND (%(until)s::bigint IS NULL OR itime < %(until)s)"
            " AND (%(bt)s::bigint IS NULL OR (itime, id) < (%(bt)s, %(bi)s))"
            " ORDER BY itime DESC, id DESC LIMIT %(limit)s",
            {
                "p": project_id,
                "e": euid,
                "since": since,
                "until": until,
                "bt": None if before is None else before[0],
                "bi": None if before is None else before[1],
                "limit": limit,
            },
        )
        return [StoredEvent(*row) for row in rows]

    def delete_events_before(self, project_id: int, cutoff: int, limit: int) -> int:
        cur = self._c.execute(
            "DELETE FROM events WHERE project_id = %s AND id IN (SELECT id FROM events"
            " WHERE project_id = %s AND itime < %s ORDER BY itime LIMIT %s)",
            (project_id, project_id, cutoff, limit),
        )
        return cur.rowcount

    def set_event_retention(self, project_id: int, days: int | None) -> None:
        self._c.execute(
            "UPDATE projects SET event_retention_days = %s WHERE id = %s", (days, project_id)
        )

    def event_retention(self) -> dict[int, int]:
        rows = self._all(
            "SELECT id, event_retention_days FROM projects"
            " WHERE event_retention_days IS NOT NULL ORDER BY id"
        )
        return {int(pid): int(days) for pid, days in rows}

    # Idempotency keys

    def get_idempotent(self, datasource_id: int, key: str, now_ms: int) -> tuple[str, bytes] | None:
        # Its own statement: under READ COMMITTED the SELECT after it then sees the row a
        # transaction that held the lock before us committed.
        self._c.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", (key, datasource_id)
        )
        row = self._one(
            "SELECT fingerprint, result FROM idempotency_keys"
            " WHERE datasource_id = %s AND key = %s AND expires_at > %s",
            (datasource_id, key, now_ms),
        )
        return None if row is None else (str(row[0]), bytes(row[1]))

    def put_idempotent(
        self, datasource_id: int, key: str, fingerprint: str, result: bytes, expires_ms: int
    ) -> None:
        self._c.execute(
            "INSERT INTO idempotency_keys (datasource_id, key, fingerprint, result, expires_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (datasource_id, key) DO UPDATE SET"
            " fingerprint = excluded.fingerprint, result = excluded.result,"
            " expires_at = excluded.expires_at",
            (datasource_id, key, fingerprint, result, expires_ms),
        )

    def sweep_idempotent(self, now_ms: int, limit: int) -> int:
        cur = self._c.execute(
            "DELETE FROM idempotency_keys WHERE (datasource_id, key) IN"
            " (SELECT datasource_id, key FROM idempotency_keys WHERE expires_at <= %s LIMIT %s)",
            (now_ms, limit),
        )
        return cur.rowcount

    def count_rows(self) -> dict[str, int]:
        counts = {}
        for table in TABLE_COLUMNS:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            counts[table] = int(self._c.execute(query).fetchone()[0])  # type: ignore[index]
        return counts

    def dump_rows(self, table: str, chunk: int = 1000) -> Iterator[list[tuple[Any, ...]]]:
        query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            sql.SQL(", ").join(map(sql.Identifier, TABLE_COLUMNS[table])),
            sql.Identifier(table),
            sql.SQL(TABLE_KEYS[table]),
        )
        with self._c.cursor(name=f"dump_{table}") as cur:  # server-side: streams
            cur.execute(query)
            while rows := cur.fetchmany(chunk):
                yield rows

    def load_rows(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, TABLE_COLUMNS[table]))
        )
        with self._c.cursor().copy(copy) as stream:
            for row in rows:
                stream.write_row(row)
        column = IDENTITY_COLUMNS.get(table)
        if column is not None:  # the next generated id follows the largest one loaded
            self._c.execute(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({t}, {c}), max({ci}))"
                    " FROM {ti} HAVING max({ci}) IS NOT NULL"
                ).format(
                    t=sql.Literal(table),
                    c=sql.Literal(column),
                    ci=sql.Identifier(column),
                    ti=sql.Identifier(table),
                )
            )
