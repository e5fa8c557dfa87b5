"""The shared SQL of webhook endpoints and their deliveries (the outbox), part of the SQL
core: :class:`~userprops.storage.sql.SqlTransaction` inherits it, so both backends run
these statements, with their dialect's placeholders and locking clauses. Its own module
only to keep the core's file a readable size.

Which pending delivery of a user is due (the head) and which wait is decided under the
endpoint's row, taken by every statement group that changes it (``for_update``, or
``skip_locked`` for the fan-out, which would rather leave an endpoint to the process
fanning it out than wait): see the contract in :mod:`userprops.storage.base`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import msgspec

from userprops.clock import now_text
from userprops.errors import ProjectNotFound
from userprops.schema import AttrType
from userprops.storage.base import (
    WAITING,
    Delivery,
    DeliveryStatus,
    DeliveryWork,
    DueDelivery,
    FanOut,
    Outcome,
    StoredChange,
    Webhook,
    WebhookHealth,
)

_WEBHOOK = (
    "SELECT id, project_id, url, secret, properties, enabled, disabled_reason, fanned_seq,"
    " failing_since, failures, created_at FROM webhooks"
)
_DELIVERY = (
    "SELECT id, webhook_id, seq, euid, status, attempts, next_at, lease_until, last_status,"
    " last_error, created_at, finished_at FROM deliveries"
)
# The pending delivery d is its user's earliest for its endpoint. A scalar subquery, not
# NOT EXISTS: PostgreSQL turns that into an anti-join whose plan, when the statistics
# say there is little pending, scans every pending delivery of the endpoint per row; this
# is one probe of deliveries_by_user per row whatever the statistics.
_HEAD = (
    "d.seq = (SELECT min(e.seq) FROM deliveries e WHERE e.webhook_id = d.webhook_id"
    " AND e.euid = d.euid AND e.status = 'pending')"
)
# The pending delivery with the lowest seq of each (webhook, euid) of a VALUES list
# (p: column1, column2) is due at ? if it waits.
_PROMOTE = (
    f"UPDATE deliveries SET next_at = ? WHERE next_at = {WAITING} AND id IN (SELECT"
    " (SELECT x.id FROM deliveries x WHERE x.webhook_id = p.column1 AND x.euid = p.column2"
    " AND x.status = 'pending' ORDER BY x.seq LIMIT 1) FROM (VALUES {values}) AS p)"
)
_NAMES = msgspec.json.Decoder(list[str])
_TYPES = {kind.value: kind for kind in AttrType}


def _values(rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
    """``(?, ?), (?, ?), ...`` for ``rows`` (not empty, all as long), and their values: a
    statement for all of them, where ``executemany`` costs one per row."""
    marks = "(" + ", ".join("?" * len(rows[0])) + ")"
    return ", ".join([marks] * len(rows)), [value for row in rows for value in row]


def _webhook(row: Any) -> Webhook:
    wid, pid, url, secret, props, enabled, reason, fanned, since, failures, created = row
    properties = None if props is None else tuple(_NAMES.decode(props))
    return Webhook(
        wid, pid, url, secret, properties, bool(enabled), reason, fanned, since, failures, created
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(*row)


class WebhookStatements(abc.ABC):
    """Webhook endpoints and deliveries over the core's statement helpers."""

    for_update: ClassVar[str]
    skip_locked: ClassVar[str]

    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    @abc.abstractmethod
    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    @abc.abstractmethod
    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    @abc.abstractmethod
    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abc.abstractmethod
    def _in(self, values: Sequence[Any]) -> tuple[str, list[Any]]: ...

    # Endpoints

    def create_webhook(
        self, project_id: int, url: str, secret: str, properties: Sequence[str] | None
    ) -> Webhook:
        head = self._one("SELECT last_seq FROM feed_heads WHERE project_id = ?", (project_id,))
        if head is None:
            raise ProjectNotFound(f"no project with id {project_id}")
        props = None if properties is None else msgspec.json.encode(list(properties)).decode()
        created = now_text()
        row = self._one(
            "INSERT INTO webhooks (project_id, url, secret, properties, enabled, fanned_seq,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (project_id, url, secret, props, True, head[0], created),
        )
        return Webhook(
            int(row[0]),
            project_id,
            url,
            secret,
            None if properties is None else tuple(properties),
            True,
            None,
            int(head[0]),
            None,
            0,
            created,
        )

    def get_webhook(self, webhook_id: int) -> Webhook | None:
        row = self._one(_WEBHOOK + " WHERE id = ?", (webhook_id,))
        return None if row is None else _webhook(row)

    def list_webhooks(self, project_id: int | None) -> list[Webhook]:
        if project_id is None:
            rows = self._all(_WEBHOOK + " ORDER BY id")
        else:
            rows = self._all(_WEBHOOK + " WHERE project_id = ? ORDER BY id", (project_id,))
        return [_webhook(r) for r in rows]

    def _take_webhook(self, webhook_id: int) -> bool:
        """Take the endpoint's row for the rest of the transaction; False when absent."""
        row = self._one("SELECT 1 FROM webhooks WHERE id = ?" + self.for_update, (webhook_id,))
        return row is not None

    def set_webhook_enabled(
        self, webhook_id: int, enabled: bool, reason: str | None, now: int
    ) -> bool:
        if not self._take_webhook(webhook_id):
            return False
        if not enabled:
            self._execute(
                "UPDATE webhooks SET enabled = ?, disabled_reason = ? WHERE id = ?",
                (False, reason, webhook_id),
            )
            return True
        self._execute(
            "UPDATE webhooks SET enabled = ?, disabled_reason = NULL, failing_since = NULL,"
            " failures = 0 WHERE id = ?",
            (True, webhook_id),
        )
        self._execute(
            "UPDATE deliveries SET next_at = ? WHERE webhook_id = ? AND status = 'pending'"
            f" AND next_at > ? AND next_at < {WAITING}",
            (now, webhook_id, now),
        )
        self._find_heads(webhook_id, now)
        return True

    def delete_webhook(self, webhook_id: int) -> bool:
        cur = self._execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
        return int(cur.rowcount) > 0

    def delivery_counts(self, webhook_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        if not webhook_ids:
            return {}
        match, params = self._in(webhook_ids)
        rows = self._all(
            "SELECT webhook_id, status, count(*) FROM deliveries WHERE webhook_id"
            + match
            + " GROUP BY webhook_id, status",
            params,
        )
        counts: dict[int, dict[str, int]] = {}
        for wid, status, count in rows:
            counts.setdefault(wid, {})[status] = int(count)
        return counts

    # The deliverer

    def delivery_work(self, now: int) -> DeliveryWork:
        rows = self._all(
            "SELECT w.id, w.project_id, w.fanned_seq < h.last_seq,"
            " (SELECT d.next_at FROM deliveries d WHERE d.webhook_id = w.id"
            f" AND d.status = 'pending' AND d.lease_until <= ? AND {_HEAD}"
            " ORDER BY d.next_at LIMIT 1)"
            " FROM webhooks w JOIN feed_heads h ON h.project_id = w.project_id"
            " WHERE w.enabled ORDER BY w.id",
            (now,),
        )
        return DeliveryWork(
            projects=frozenset(r[1] for r in rows),
            behind=any(bool(r[2]) for r in rows),
            next_due={r[0]: None if r[3] is None or r[3] >= WAITING else r[3] for r in rows},
        )

    def fan_out(self, now: int, limit: int) -> FanOut:
        behind = self._all(
            "SELECT id, project_id, fanned_seq, properties,"
            " (SELECT last_seq FROM feed_heads h WHERE h.project_id = webhooks.project_id)"
            " FROM webhooks WHERE enabled AND fanned_seq <"
            " (SELECT last_seq FROM feed_heads h WHERE h.project_id = webhooks.project_id)"
            " ORDER BY id" + self.skip_locked
        )
        made, more = 0, False
        for wid, pid, fanned, props, last in behind:
            changes = self._all(
                "SELECT seq, euid, property FROM changes WHERE project_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (pid, fanned, limit),
            )
            wanted = None if props is None else frozenset(_NAMES.decode(props))
            matching = [(s, e) for s, e, p in changes if wanted is None or p in wanted]
            made += self._make_deliveries(wid, pid, matching, now)
            if len(changes) == limit:
                more, fanned = True, changes[-1][0]
            else:  # every change up to ``last`` was visible: those missing were swept
                fanned = max(last, changes[-1][0] if changes else 0)
            self._execute("UPDATE webhooks SET fanned_seq = ? WHERE id = ?", (fanned, wid))
        return FanOut(made, more)

    def _make_deliveries(
        self, webhook_id: int, project_id: int, changes: Sequence[tuple[int, int]], now: int
    ) -> int:
        """Deliveries of ``changes`` ((seq, euid), in seq order) for the endpoint: due at
        ``now``, or waiting when the user already has a pending one."""
        if not changes:
            return 0
        match, params = self._in(sorted({euid for _, euid in changes}))
        waiting = {
            int(r[0])
            for r in self._all(
                "SELECT DISTINCT euid FROM deliveries WHERE webhook_id = ?"
                " AND status = 'pending' AND euid" + match,
                (webhook_id, *params),
            )
        }
        rows = []
        for seq, euid in changes:
            due = WAITING if euid in waiting else now
            rows.append((webhook_id, project_id, seq, euid, due, now))
            waiting.add(euid)
        values, params = _values(rows)
        self._execute(
            "INSERT INTO deliveries (webhook_id, project_id, seq, euid, next_at, created_at)"
            f" VALUES {values} ON CONFLICT (webhook_id, seq) DO NOTHING",
            params,
        )
        return len(rows)

    def claim_deliveries(
        self, now: int, lease_until: int, wanted: Mapping[int, int]
    ) -> list[DueDelivery]:
        claimed: list[int] = []
        for wid, most in sorted(wanted.items()):
            if most <= 0:
                continue
            rows = self._all(
                "UPDATE deliveries SET lease_until = ?, attempts = attempts + 1"
                " WHERE id IN (SELECT d.id FROM deliveries d WHERE d.webhook_id = ?"
                " AND d.status = 'pending' AND d.next_at <= ? AND d.lease_until <= ?"
                f" AND {_HEAD} AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = ?"
                f" AND w.enabled) ORDER BY d.next_at LIMIT ?{self.skip_locked}) RETURNING id",
                (lease_until, wid, now, now, wid, most),
            )
            claimed += [int(r[0]) for r in rows]
        if not claimed:
            return []
        match, params = self._in(claimed)
        rows = self._all(
            "SELECT d.id, d.webhook_id, d.euid, d.seq, d.attempts, w.url, w.secret,"
            " d.project_id, p.timezone, c.property, c.op, c.type, c.old, c.new, c.source, c.at"
            " FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id"
            " JOIN projects p ON p.id = d.project_id"
            " LEFT JOIN changes c ON c.project_id = d.project_id AND c.seq = d.seq"
            " WHERE d.id" + match + " ORDER BY d.id",
            params,
        )
        return [_due(r) for r in rows]

    def record_outcomes(self, outcomes: Sequence[Outcome], now: int) -> dict[int, WebhookHealth]:
        if not outcomes:
            return {}
        # The endpoints' rows first, in id order: a fan-out of one of them waits for us.
        match, params = self._in(sorted({o.webhook_id for o in outcomes}))
        before = {
            r[0]: WebhookHealth(bool(r[1]), r[2], r[3])
            for r in self._all(
                "SELECT id, enabled, failing_since, failures FROM webhooks WHERE id"
                + match
                + " ORDER BY id"
                + self.for_update,
                params,
            )
        }
        by_kind: dict[str, list[Outcome]] = {}
        delivered: dict[int | None, list[int]] = {}  # by status: one statement each
        for o in outcomes:
            by_kind.setdefault(o.kind, []).append(o)
            if o.kind == "delivered":
                delivered.setdefault(o.status, []).append(o.delivery_id)
        for status, ids in delivered.items():
            match, params = self._in(ids)
            self._execute(
                "UPDATE deliveries SET status = 'delivered', finished_at = ?, lease_until = 0,"
                " last_status = ?, last_error = NULL WHERE status = 'pending' AND id" + match,
                (now, status, *params),
            )
        dead = [(now, o.status, o.error, o.delivery_id, o.attempt) for o in by_kind.get("dead", [])]
        retry = [
            (o.next_at, o.status, o.error, o.delivery_id, o.attempt)
            for o in by_kind.get("retry", [])
        ]
        released = [(o.delivery_id, o.attempt) for o in by_kind.get("released", [])]
        if dead:
            self._many(
                "UPDATE deliveries SET status = 'dead', finished_at = ?, lease_until = 0,"
                " last_status = ?, last_error = ? WHERE id = ? AND status = 'pending'"
                " AND attempts = ?",
                dead,
            )
        if retry:
            self._many(
                "UPDATE deliveries SET next_at = ?, lease_until = 0, last_status = ?,"
                " last_error = ? WHERE id = ? AND status = 'pending' AND attempts = ?",
                retry,
            )
        if released:
            self._many(
                "UPDATE deliveries SET lease_until = 0 WHERE id = ? AND status = 'pending'"
                " AND attempts = ?",
                released,
            )
        # Whatever the updates found, the user's head is done or still pending: making
        # the lowest pending one due when it waits is right either way.
        ended = sorted(
            {(o.webhook_id, o.euid) for o in outcomes if o.kind in ("delivered", "dead")}
        )
        if ended:
            values, params = _values(ended)
            self._execute(_PROMOTE.format(values=values), (now, *params))
        return self._count_failures(before, outcomes, now)

    def _count_failures(
        self, before: Mapping[int, WebhookHealth], outcomes: Sequence[Outcome], now: int
    ) -> dict[int, WebhookHealth]:
        succeeded = {o.webhook_id for o in outcomes if o.kind == "delivered"}
        failed: dict[int, int] = {}
        for o in outcomes:
            if o.kind in ("retry", "dead"):
                failed[o.webhook_id] = failed.get(o.webhook_id, 0) + 1
        health: dict[int, WebhookHealth] = {}
        for wid, old in before.items():
            if wid in succeeded:
                new = WebhookHealth(old.enabled, None, 0)
            elif wid in failed:
                since = now if old.failing_since is None else old.failing_since
                new = WebhookHealth(old.enabled, since, old.failures + failed[wid])
            else:
                new = old
            if new != old:
                self._execute(
                    "UPDATE webhooks SET failing_since = ?, failures = ? WHERE id = ?",
                    (new.failing_since, new.failures, wid),
                )
            health[wid] = new
        return health

    # Inspecting and redelivering

    def list_deliveries(
        self, webhook_id: int, status: DeliveryStatus | None, limit: int, before: int | None
    ) -> list[Delivery]:
        sql = _DELIVERY + " WHERE webhook_id = ?"
        params: list[Any] = [webhook_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if before is not None:
            sql += " AND id < ?"
            params.append(before)
        rows = self._all(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [_delivery(r) for r in rows]

    def get_delivery(self, delivery_id: int) -> Delivery | None:
        row = self._one(_DELIVERY + " WHERE id = ?", (delivery_id,))
        return None if row is None else _delivery(row)

    def redeliver(self, webhook_id: int, delivery_ids: Sequence[int] | None, now: int) -> int:
        if not self._take_webhook(webhook_id):
            return 0
        which, params = " AND status = 'dead'", list[Any]()
        if delivery_ids is not None:
            if not delivery_ids:
                return 0
            match, params = self._in(delivery_ids)
            which = " AND id" + match
        # A pending one is made due (not while it waits for its user's earlier change);
        # an ended one waits, then the heads of the endpoint's users are found again.
        pending = self._execute(
            "UPDATE deliveries SET next_at = ? WHERE webhook_id = ? AND status = 'pending'"
            f" AND next_at > ? AND next_at < {WAITING}" + which,
            (now, webhook_id, now, *params),
        ).rowcount
        queued = self._execute(
            "UPDATE deliveries SET status = 'pending', attempts = 0, lease_until = 0,"
            f" next_at = {WAITING}, finished_at = NULL WHERE webhook_id = ?"
            " AND status <> 'pending'" + which,
            (webhook_id, *params),
        ).rowcount
        self._find_heads(webhook_id, now)
        return int(pending) + int(queued)

    def _find_heads(self, webhook_id: int, now: int) -> None:
        """Make the endpoint's pending deliveries wait behind their user's earliest one
        (unless in flight), and that one due at ``now`` if it waited: two scans of its
        pending deliveries, for the operator's commands, never the deliverer's."""
        self._execute(
            f"UPDATE deliveries SET next_at = {WAITING} WHERE id IN (SELECT d.id"
            " FROM deliveries d WHERE d.webhook_id = ? AND d.status = 'pending'"
            f" AND d.next_at <> {WAITING} AND d.lease_until <= ? AND NOT ({_HEAD}))",
            (webhook_id, now),
        )
        self._execute(
            "UPDATE deliveries SET next_at = ? WHERE id IN (SELECT d.id FROM deliveries d"
            f" WHERE d.webhook_id = ? AND d.status = 'pending' AND d.next_at = {WAITING}"
            f" AND {_HEAD})",
            (now, webhook_id),
        )

    def delete_deliveries_before(self, cutoff: int, limit: int) -> int:
        cur = self._execute(
            "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
            " WHERE status <> 'pending' AND finished_at < ? ORDER BY finished_at LIMIT ?)",
            (cutoff, limit),
        )
        return int(cur.rowcount)


def _due(row: Any) -> DueDelivery:
    did, wid, euid, seq, attempt, url, secret, pid, tz, prop, op, kind, old, new, src, at = row
    change = None
    if prop is not None:
        change = StoredChange(
            seq, euid, prop, op, None if kind is None else _TYPES[kind], old, new, src, at
        )
    return DueDelivery(did, wid, euid, seq, attempt, url, secret, pid, tz, change)
