"""PostgreSQL's own statements: :class:`PostgresTransaction` runs the shared SQL core
(:class:`~userprops.storage.sql.SqlTransaction`) on a psycopg connection, and adds what
PostgreSQL does its own way: row locks, the group-commit read and write in one statement
each with BEGIN and COMMIT sent alongside (batch mode), events in bulk, and copying rows
with COPY.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, LiteralString

import msgspec
import psycopg
import psycopg.errors
from psycopg import sql

from userprops.clock import now_ms, now_text
from userprops.keys import sort_key
from userprops.schema import AttrType
from userprops.storage.base import (
    TABLE_COLUMNS,
    TABLE_KEYS,
    IdentityKey,
    LockedRead,
    NewChange,
    NewEvent,
    StoredValue,
    UserKey,
    ValueKey,
)
from userprops.storage.sql import SqlTransaction, _dialect, by_project

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
# (docs/backends.md, "Statement plans"; tests/storage/test_postgres_plans.py checks it).
#
# users [[project_id, euid], ...] sorted (project id, then EUID), and
# pairs [[project_id, euid, name], ...]:
# a function of migration 0004, returning each value's ts since 0011 (it locks, then reads
# with a snapshot taken once every lock is granted).
LOCK_VALUES: LiteralString = "SELECT * FROM userprops_lock_values(%s::jsonb, %s::jsonb)"
# deletes [[project_id, euid, name], ...] (found by key, deleted by row address); lists
# [[project_id, euid, name, elements or null], ...] for every LIST put (its new elements)
# and every delete (null: no element stays); then updated_at and puts [[project_id, euid,
# name, type, value, sort_key], ...]. A list's elements no longer in it are deleted, new
# ones inserted (the two sets are disjoint, so the two parts never touch one row).
# puts carry ts last: [[project_id, euid, name, type, value, sort_key, ts], ...].
WRITE_VALUES: LiteralString = (
    "WITH gone AS (DELETE FROM user_values AS v USING (SELECT x.ctid"
    " FROM (SELECT (r->>0)::bigint AS p, (r->>1)::bigint AS e, r->>2 AS n"
    " FROM jsonb_array_elements(%s::jsonb) AS r) AS k,"
    " LATERAL (SELECT ctid FROM user_values"
    " WHERE project_id = k.p AND euid = k.e AND name = k.n OFFSET 0) AS x) AS d"
    " WHERE v.ctid = d.ctid),"
    " lists AS (SELECT (r->>0)::bigint AS p, (r->>1)::bigint AS e, r->>2 AS n, r->3 AS keep"
    " FROM jsonb_array_elements(%s::jsonb) AS r),"
    " items_gone AS (DELETE FROM user_list_items AS i USING (SELECT x.ctid FROM lists AS k,"
    " LATERAL (SELECT ctid, item FROM user_list_items"
    " WHERE project_id = k.p AND euid = k.e AND name = k.n OFFSET 0) AS x"
    " WHERE NOT coalesce(k.keep ? x.item, false)) AS d WHERE i.ctid = d.ctid),"
    " items_new AS (INSERT INTO user_list_items (project_id, euid, name, item)"
    " SELECT k.p, k.e, k.n, x.item FROM lists AS k,"
    " jsonb_array_elements_text(k.keep) AS x(item) WHERE jsonb_typeof(k.keep) = 'array'"
    " ON CONFLICT DO NOTHING)"
    " INSERT INTO user_values (project_id, euid, name, type, value, updated_at, sort_key, ts)"
    " SELECT (r->>0)::bigint, (r->>1)::bigint, r->>2, r->>3, r->>4, %s, r->>5,"
    " (r->>6)::bigint FROM jsonb_array_elements(%s::jsonb) AS r"
    " ON CONFLICT (project_id, euid, name)"
    " DO UPDATE SET type = excluded.type, value = excluded.value,"
    " updated_at = excluded.updated_at, sort_key = excluded.sort_key, ts = excluded.ts"
)
# The group-commit read of writes that keep saved segments (migration 0015): users, pairs
# as LOCK_VALUES, projects [project_id, ...] sorted, members [[project_id, euid], ...]
# whose memberships are read (from the users row: its segment ids joined by commas).
LOCK_SEGMENT_VALUES: LiteralString = (
    "SELECT * FROM userprops_lock_segment_values(%s::jsonb, %s::jsonb, %s::jsonb, %s::jsonb)"
)
# Each user's memberships in its users row (migration 0015), moved in step with
# segment_members: moves [[project_id, euid, [segment_id left, ...], [segment_id
# entered, ...]], ...], each row found by key (as in WRITE_VALUES), the new array made
# from the row's current one. The rows are locked by the writer (or, in a build or a
# sweep, no writer can move their memberships: the project's segments lock), so the row
# found is the row updated.
MOVE_USERS: LiteralString = (
    "UPDATE users AS u SET segment_ids = (SELECT array_agg(DISTINCT s ORDER BY s)"
    " FROM unnest(u.segment_ids || x.n) AS s WHERE s <> ALL (x.l))"
    " FROM (SELECT y.ctid, k.l, k.n FROM (SELECT (r->>0)::bigint AS p, (r->>1)::bigint AS e,"
    " ARRAY(SELECT jsonb_array_elements_text(r->2)::bigint) AS l,"
    " ARRAY(SELECT jsonb_array_elements_text(r->3)::bigint) AS n"
    " FROM jsonb_array_elements(%s::jsonb) AS r) AS k,"
    " LATERAL (SELECT ctid FROM users WHERE euid = k.e AND project_id = k.p OFFSET 0) AS y)"
    " AS x WHERE u.ctid = x.ctid"
)
# Memberships of saved segments: left [[project_id, segment_id, euid], ...] deleted,
# entered ones inserted, then the users rows as MOVE_USERS.
WRITE_MEMBERS: LiteralString = (
    "WITH gone AS (DELETE FROM segment_members AS m USING (SELECT x.ctid"
    " FROM (SELECT (r->>0)::bigint AS p, (r->>1)::bigint AS s, (r->>2)::bigint AS e"
    " FROM jsonb_array_elements(%s::jsonb) AS r) AS k,"
    " LATERAL (SELECT ctid FROM segment_members"
    " WHERE project_id = k.p AND segment_id = k.s AND euid = k.e OFFSET 0) AS x) AS d"
    " WHERE m.ctid = d.ctid),"
    " added AS (INSERT INTO segment_members (project_id, segment_id, euid)"
    " SELECT (r->>0)::bigint, (r->>1)::bigint, (r->>2)::bigint"
    " FROM jsonb_array_elements(%s::jsonb) AS r ON CONFLICT DO NOTHING) " + MOVE_USERS
)
SEGMENTS_LOCK = 1936025972  # the class of the advisory lock of a project's segments
# GET /v1/user/property for a batch of reads: keys [[project_id, euid], ...]; a row per
# value of each key's user (a NULL name when it has none), none when the user is not there.
READ_USERS: LiteralString = (
    "SELECT k.i - 1, v.name, v.type, v.value, v.ts"
    " FROM (SELECT t.i, (t.r->>0)::bigint AS p, (t.r->>1)::bigint AS e"
    " FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS t(r, i)) AS k"
    " CROSS JOIN LATERAL (SELECT 1 FROM users"
    " WHERE users.euid = k.e AND users.project_id = k.p OFFSET 0) AS u"
    " LEFT JOIN LATERAL (SELECT name, type, value, ts FROM user_values"
    " WHERE user_values.project_id = k.p AND user_values.euid = k.e OFFSET 0) AS v ON true"
)
# The changes of one project (docs/backends.md, "The change feed"): take the project's
# counter row, held until the commit, and number the changes after it. rows:
# [[euid, property, op, type, old, new, source], ...].
RECORD_CHANGES: LiteralString = (
    "WITH h AS (UPDATE feed_heads SET last_seq = last_seq + %(n)s WHERE project_id = %(p)s"
    " RETURNING last_seq - %(n)s AS base)"
    " INSERT INTO changes (project_id, seq, euid, property, op, type, old, new, source, at)"
    " SELECT %(p)s::bigint, h.base + a.i, (a.x->>0)::bigint, a.x->>1, a.x->>2, a.x->>3,"
    " a.x->>4, a.x->>5, a.x->>6, %(at)s::bigint"
    " FROM h, jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS a(x, i)"
)
# Register for a group of requests (resolve_identities). keys: [[project_id, name, value],
# ...], each looked up by primary key.
FIND_IDENTITIES: LiteralString = (
    "SELECT k.p, k.n, k.v, x.euid FROM (SELECT (r->>0)::bigint AS p, r->>1 AS n, r->>2 AS v"
    " FROM jsonb_array_elements(%s::jsonb) AS r) AS k,"
    " LATERAL (SELECT euid FROM identities"
    " WHERE project_id = k.p AND name = k.n AND value = k.v OFFSET 0) AS x"
)
CREATE_USERS: LiteralString = (
    "INSERT INTO users (project_id, created_at)"
    " SELECT %s, %s FROM generate_series(1, %s) RETURNING euid"
)
# rows: [[project_id, name, value, euid], ...] in key order; the values bound are returned.
BIND_IDENTITIES: LiteralString = (
    "INSERT INTO identities (project_id, name, value, euid)"
    " SELECT (r->>0)::bigint, r->>1, r->>2, (r->>3)::bigint"
    " FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS a(r, i) ORDER BY i"
    " ON CONFLICT DO NOTHING RETURNING project_id, name, value, euid"
)
DELETE_ORPHANS: LiteralString = (
    "DELETE FROM users WHERE euid = ANY(%s) AND NOT EXISTS"
    " (SELECT 1 FROM identities i WHERE i.project_id = users.project_id"
    " AND i.euid = users.euid)"
)
# Delivered at the commit to every process LISTENing (userprops.feed): the project's id.
CHANGES_CHANNEL = "userprops_changes"
NOTIFY_CHANGES: LiteralString = "SELECT pg_notify('userprops_changes', %s)"
_JSON = msgspec.json.Encoder()


def json_text(rows: Any) -> str:
    return _JSON.encode(rows).decode()


def _moves(entered: Iterable[tuple[int, int, int]], left: Iterable[tuple[int, int, int]]) -> str:
    """MOVE_USERS' parameter: the memberships (project id, segment id, EUID) that moved,
    by user."""
    moves: dict[UserKey, tuple[list[int], list[int]]] = {}
    for index, triples in enumerate((left, entered)):
        for pid, sid, euid in triples:
            moves.setdefault((pid, euid), ([], []))[index].append(sid)
    return json_text([(pid, euid, out, into) for (pid, euid), (out, into) in moves.items()])


IDENTITY_COLUMNS = {
    "projects": "id",
    "datasources": "id",
    "users": "euid",
    "events": "id",
    "webhooks": "id",
    "deliveries": "id",
    "operators": "id",
    "audit_log": "id",
    "segments": "id",
}


class PostgresTransaction(SqlTransaction):
    """The statements of one transaction on ``conn``.

    ``batch=True`` is the group-commit writer's transaction (:meth:`PostgresStorage.
    run_batch`), which saves two round trips per batch: ``BEGIN`` is not sent until the
    first statement, and goes with it when that is :meth:`lock_values`; the statement of
    :meth:`write_values` is deferred until the next statement, :meth:`end_job` or
    :meth:`commit`, which sends it with ``COMMIT``. The caller then calls :meth:`end_job`
    after each job but the last, and :meth:`commit` at the end, so that a deferred write
    fails within its own job. :meth:`record_changes` keeps its changes until
    :meth:`commit` too, which sends them last, with ``COMMIT``: their projects' counter
    rows are taken after every other lock and held only for the commit itself.
    """

    placeholder = "%s"
    collate = ' COLLATE "C"'
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    unique_violation = psycopg.errors.UniqueViolation

    def __init__(self, conn: psycopg.Connection[Any], *, batch: bool = False) -> None:
        super().__init__()
        self._conn = conn
        self._begin = batch  # BEGIN not sent yet
        self._batch = batch
        self._deferred: list[tuple[LiteralString, tuple[Any, ...]]] = []
        self._changes: list[NewChange] = []
        # COMMIT was sent (or queued): from here a lost connection leaves the outcome
        # unknown, and the batch must not be run again (it may have been applied).
        self.commit_sent = False

    @property
    def _c(self) -> psycopg.Connection[Any]:
        """The connection, once what was deferred (BEGIN, a write) has been sent."""
        if self._begin or self._deferred:
            self._send_deferred()
        return self._conn

    def _send_deferred(self) -> None:
        """Send BEGIN and the deferred writes, if not yet sent (queued, in a pipeline)."""
        if self._begin:
            self._begin = False
            self._conn.execute("BEGIN")
        deferred, self._deferred = self._deferred, []
        for query, params in deferred:
            self._conn.execute(query, params)

    def end_job(self) -> None:
        """Batch mode: send the deferred writes, so that their errors are this job's."""
        if self._deferred:
            if len(self._deferred) == 1:
                self._send_deferred()
            else:
                with self._conn.pipeline():
                    self._send_deferred()

    def _defer(self, query: LiteralString, params: tuple[Any, ...]) -> None:
        """Batch mode: hold a write until the next statement, end_job or commit."""
        self._deferred.append((query, params))

    def commit(self) -> None:
        """Batch mode: send the deferred write, the changes and COMMIT, in one round trip."""
        changes, self._changes = self._changes, []
        if not self._deferred and not changes:
            if self._begin:  # no statement at all: nothing to commit
                self._begin = False
            else:
                self.commit_sent = True
                self._conn.execute("COMMIT")
            return
        with self._conn.pipeline():
            self._send_deferred()
            self._send_changes(changes)
            self.commit_sent = True
            self._conn.execute("COMMIT")

    def _send_changes(self, changes: Sequence[NewChange]) -> None:
        at = now_ms()
        for pid, rows in by_project(changes):
            rows_json = json_text(
                [(c.euid, c.property, c.op, c.type, c.old, c.new, c.source) for c in rows]
            )
            self._conn.execute(
                RECORD_CHANGES, {"n": len(rows), "p": pid, "at": at, "rows": rows_json}
            )
            self._conn.execute(NOTIFY_CHANGES, (str(pid),))

    def record_changes(self, changes: Sequence[NewChange]) -> None:
        if self._batch:
            self._changes.extend(changes)
        elif changes:
            self._send_deferred()
            with self._conn.pipeline():
                self._send_changes(changes)

    def _run(self, sql: str, params: Sequence[Any]) -> psycopg.Cursor[Any]:
        # The shared statements are constants of userprops.storage.sql, never built from
        # input: only parameters carry values.
        return self._c.execute(sql, params)

    def _run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._c.cursor().executemany(sql, rows)

    def _in(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return " = ANY(?)", [list(values)]

    def _serialize_key(self, datasource_id: int, key: str) -> None:
        # Its own statement: under READ COMMITTED the SELECT after it then sees the row a
        # transaction that held the lock before us committed.
        self._execute("SELECT pg_advisory_xact_lock(hashtextextended(?, ?))", (key, datasource_id))

    # Values

    def _rows_after_deferred(self, query: LiteralString, params: Sequence[Any]) -> list[Any]:
        """The rows of ``query``, sent in one round trip with what was deferred (BEGIN,
        a previous job's write)."""
        if self._begin or self._deferred is not None:
            with self._conn.pipeline():
                self._send_deferred()
                cursor = self._conn.execute(query, params)
            return cursor.fetchall()
        return self._run(query, params).fetchall()

    def resolve_identities(
        self, keys: Sequence[IdentityKey], created: list[int] | None = None
    ) -> dict[IdentityKey, int]:
        # A few statements for the whole group, however many values: find the bound ones,
        # make a user for each of the others, bind them (in one order, so that two
        # processes binding overlapping values wait rather than deadlock), and for values
        # another process bound first, take its user and remove the one made here.
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        resolved = self._find_identities(wanted, first=True)
        missing = [key for key in wanted if key not in resolved]
        if not missing:
            return resolved
        made: list[int] = []
        rows: list[tuple[int, str, str, int]] = []
        for pid, group in itertools.groupby(missing, key=lambda k: k[0]):
            values = list(group)
            new = self._run(CREATE_USERS, (pid, now_text(), len(values))).fetchall()
            euids = [int(r[0]) for r in new]
            made += euids
            rows += [(p, n, v, e) for (p, n, v), e in zip(values, euids, strict=True)]
        bound = self._run(BIND_IDENTITIES, (json_text(rows),)).fetchall()
        resolved.update({(p, n, v): e for p, n, v, e in bound})
        if created is not None:
            created += [e for *_, e in bound]
        lost = [key for key in missing if key not in resolved]
        if lost:  # another process bound them first (ON CONFLICT waited for its commit)
            resolved.update(self._find_identities(lost, first=False))
            self._run(DELETE_ORPHANS, (made,))
        return resolved

    def _find_identities(self, keys: list[IdentityKey], *, first: bool) -> dict[IdentityKey, int]:
        params = (json_text(keys),)
        rows = (
            self._rows_after_deferred(FIND_IDENTITIES, params)
            if first
            else self._run(FIND_IDENTITIES, params).fetchall()
        )
        return {(p, n, v): e for p, n, v, e in rows}

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
        rows = self._rows_after_deferred(LOCK_VALUES, (json_text(users), json_text(pairs)))
        found: dict[UserKey, dict[str, StoredValue]] = {}
        for pid, euid, name, kind, text, ts in rows:
            if name is None:
                found[pid, euid] = {}
            else:
                values = found.get((pid, euid))
                if values is not None:
                    values[name] = StoredValue(_TYPES[kind], text, ts)
        return found

    def write_values(
        self,
        puts: Mapping[ValueKey, StoredValue],
        deletes: Collection[ValueKey],
        before: Mapping[ValueKey, StoredValue | None] | None = None,
    ) -> None:
        # One statement whatever ``before`` says: it keeps the LIST elements in SQL.
        if puts or deletes:
            rows = [
                (p, e, n, v.type.value, v.text, sort_key(v.type, v.text), v.ts)
                for (p, e, n), v in puts.items()
            ]
            lists: list[tuple[int, int, str, msgspec.Raw | None]] = [
                (p, e, n, msgspec.Raw(v.text))
                for (p, e, n), v in puts.items()
                if v.type is AttrType.LIST
            ]
            lists += [(p, e, n, None) for p, e, n in deletes]
            stamp = now_ms()
            params = (json_text(list(deletes)), json_text(lists), stamp, json_text(rows))
            if self._batch:
                self.end_job()  # one deferred write at a time
                self._defer(WRITE_VALUES, params)
            else:
                self._c.execute(WRITE_VALUES, params)

    def lock_segment_values(
        self,
        wanted: Mapping[UserKey, Collection[str]],
        projects: Collection[int],
        members: Collection[tuple[int, int, int]],
    ) -> LockedRead:
        users = sorted(wanted)
        pairs = [(pid, euid, name) for pid, euid in users for name in wanted[pid, euid]]
        asked = set(members)  # read by user, from the users row
        params = (
            json_text(users),
            json_text(pairs),
            json_text(sorted(projects)),
            json_text(list({(pid, euid) for pid, euid, _ in asked})),
        )
        if self._begin or self._deferred:  # one round trip for all of them
            with self._conn.pipeline():
                self._send_deferred()
                cursor = self._conn.execute(LOCK_SEGMENT_VALUES, params)
            rows = cursor.fetchall()
        else:
            rows = self._run(LOCK_SEGMENT_VALUES, params).fetchall()
        versions: dict[int, int] = {}
        held: set[tuple[int, int, int]] = set()
        found: dict[UserKey, dict[str, StoredValue]] = {}
        for pid, euid, name, kind, text, ts in rows:
            if name is not None:
                values = found.get((pid, euid))
                if values is not None:
                    values[name] = StoredValue(_TYPES[kind], text, ts)
            elif kind is None:
                found[pid, euid] = {}
            elif kind == "version":
                versions[pid] = int(text)
            else:  # the user's memberships: those asked about
                held.update(
                    key for sid in text.split(",") if (key := (pid, euid, int(sid))) in asked
                )
        return LockedRead(found, versions, held)

    def write_members(
        self,
        entered: Collection[tuple[int, int, int]],
        left: Collection[tuple[int, int, int]],
    ) -> None:
        if entered or left:
            params = (json_text(list(left)), json_text(list(entered)), _moves(entered, left))
            if self._batch:
                self._defer(WRITE_MEMBERS, params)
            else:
                self._c.execute(WRITE_MEMBERS, params)

    def _erase_members(self, project_id: int, euid: int) -> None:
        # By the primary key, for each segment of the users row (no index by user).
        self._execute(
            "DELETE FROM segment_members WHERE project_id = ? AND euid = ? AND segment_id"
            " = ANY((SELECT segment_ids FROM users WHERE euid = ? AND project_id = ?)::bigint[])",
            (project_id, euid, euid, project_id),
        )

    def user_segments(self, project_id: int, euid: int) -> list[str]:
        # The users row's copy (migration 0015): segment_members has no index by user.
        rows = self._all(
            "SELECT s.name FROM users u JOIN segments s ON s.id = ANY(u.segment_ids)"
            f" WHERE u.euid = ? AND u.project_id = ? ORDER BY s.name{self.collate}",
            (euid, project_id),
        )
        return [str(row[0]) for row in rows]

    # Segments

    position = "strpos({0}, {1})"

    def _in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        # Never prepared: each query is planned for its own values (a driver's range may
        # hold ten users or a million).
        return list(self._c.execute(_dialect(sql, self.placeholder), params, prepare=False))

    def lock_segments(self, project_id: int) -> None:
        self._c.execute(
            "SELECT pg_advisory_xact_lock(%s, (%s::bigint %% 2147483647)::int)",
            (SEGMENTS_LOCK, project_id),
        )

    def segments_versions(self, project_ids: Collection[int]) -> dict[int, int]:
        if not project_ids:
            return {}
        ordered = sorted(project_ids)  # the order every writer takes them in
        conn = self._c
        with conn.pipeline():  # one round trip; the read is a statement after the locks
            for pid in ordered:
                conn.execute(
                    "SELECT pg_advisory_xact_lock_shared(%s, (%s::bigint %% 2147483647)::int)",
                    (SEGMENTS_LOCK, pid),
                )
            cursor = conn.execute(
                "SELECT id, segments_version FROM projects WHERE id = ANY(%s)", (ordered,)
            )
        return {int(pid): int(version) for pid, version in cursor.fetchall()}

    # Events

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
                now_ms(),
                [e.euid for e in events],
                [e.event_name for e in events],
                [e.itime for e in events],
                [e.random_id for e in events],
                [e.app_key for e in events],
                [e.properties for e in events],
            ),
        )
        return cur.rowcount

    # Bulk copy

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
        if table == "segment_members":  # and each user's copy of them (migration 0015)
            self._c.execute(MOVE_USERS, (_moves(rows, ()),))
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
