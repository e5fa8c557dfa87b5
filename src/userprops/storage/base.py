"""The storage contract. Every backend implements :class:`Storage` and
:class:`Transaction`; tests/storage runs one suite against each.

Rules every backend keeps:

- A write transaction is all or nothing. Its changes are durable when the method that
  ends it returns (SQLite WAL with ``synchronous=FULL``; PostgreSQL with
  ``synchronous_commit=on``).
- Values are TEXT in the form :func:`userprops.schema.encode` gives, one row per
  (project, euid, attribute); every statement on user data is keyed by project and EUID,
  except segment queries, which read a project's index ranges (docs/segments.md).
- A failure of the database itself (unreachable, disk full, I/O error) is raised as
  :class:`userprops.errors.StorageUnavailable`; nothing of that transaction is applied.
- Uniqueness is enforced by the database: a project slug, an API key, an identity value
  per project and identity name, a contact value per project and contact name, an event
  ``random_id`` per project.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

from userprops.schema import AttrType, SchemaMode

if TYPE_CHECKING:
    from datetime import datetime

    from userprops.conditions import Condition

T = TypeVar("T")

UserKey = tuple[int, int]  # (project_id, euid)
IdentityKey = tuple[int, str, str]  # (project_id, identity name, value)
ValueKey = tuple[int, int, str]  # (project_id, euid, attribute name)


TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "projects": (
        "id",
        "slug",
        "schema_mode",
        "timezone",
        "created_at",
        "event_retention_days",
        "history_retention_days",
        "segments_version",
    ),
    "datasources": ("id", "project_id", "name", "api_key", "secret_hash", "enabled", "created_at"),
    "attributes": ("project_id", "name", "type", "created_at"),
    "users": ("euid", "project_id", "created_at"),
    "identities": ("project_id", "name", "value", "euid"),
    "user_values": (
        "project_id",
        "euid",
        "name",
        "type",
        "value",
        "updated_at",
        "sort_key",
        "ts",
    ),
    "user_list_items": ("project_id", "euid", "name", "item"),
    "contacts": ("project_id", "euid", "name", "value", "updated_at"),
    "event_definitions": ("project_id", "name", "created_at"),
    "event_properties": ("project_id", "event_name", "name", "type", "created_at"),
    "idempotency_keys": ("datasource_id", "key", "fingerprint", "result", "expires_at"),
    "events": (
        "id",
        "project_id",
        "euid",
        "event_name",
        "itime",
        "random_id",
        "app_key",
        "properties",
        "received_at",
    ),
    "feed_heads": ("project_id", "last_seq"),
    "changes": (
        "project_id",
        "seq",
        "euid",
        "property",
        "op",
        "type",
        "old",
        "new",
        "source",
        "at",
    ),
    "webhooks": (
        "id",
        "project_id",
        "url",
        "secret",
        "properties",
        "enabled",
        "disabled_reason",
        "fanned_seq",
        "failing_since",
        "created_at",
        "failures",
    ),
    "deliveries": (
        "id",
        "webhook_id",
        "project_id",
        "seq",
        "euid",
        "status",
        "attempts",
        "next_at",
        "lease_until",
        "last_status",
        "last_error",
        "created_at",
        "finished_at",
    ),
    "import_checkpoints": ("project_id", "name", "lines_done", "digest", "updated_at"),
    "operators": ("id", "name", "password_hash", "created_at"),
    "audit_log": ("id", "at", "actor", "action", "target", "details"),
    "segments": (
        "id",
        "project_id",
        "name",
        "condition",
        "built_to",
        "quiet",
        "created_at",
        "updated_at",
    ),
    "segment_members": ("project_id", "segment_id", "euid"),
}
"""The tables every backend has and their columns, parents before children: the order
``userprops copy`` moves them in."""

TABLE_KEYS: dict[str, str] = {
    "projects": "id",
    "datasources": "id",
    "attributes": "project_id, name",
    "users": "euid",
    "identities": "project_id, name, value",
    "user_values": "project_id, euid, name",
    "user_list_items": "project_id, euid, name, item",
    "contacts": "project_id, euid, name",
    "event_definitions": "project_id, name",
    "event_properties": "project_id, event_name, name",
    "idempotency_keys": "datasource_id, key",
    "events": "id",
    "feed_heads": "project_id",
    "changes": "project_id, seq",
    "webhooks": "id",
    "deliveries": "id",
    "import_checkpoints": "project_id, name",
    "operators": "id",
    "audit_log": "id",
    "segments": "id",
    "segment_members": "project_id, segment_id, euid",
}
"""The primary key of each table, as an ORDER BY list."""


@dataclass(frozen=True)
class Project:
    id: int
    slug: str
    schema_mode: SchemaMode
    timezone: str
    created_at: str


@dataclass(frozen=True)
class DataSource:
    id: int
    project_id: int
    name: str
    api_key: str
    secret_hash: str
    enabled: bool
    created_at: str


class StoredValue(NamedTuple):
    """A stored value: its type, its text (:func:`userprops.schema.encode`) and ``ts``,
    its event time in epoch milliseconds (docs/bulk.md, "Event time": the timestamp of the
    write that set it; 0 when none was given, older than any write). A tuple, because the
    write path builds several per request."""

    type: AttrType
    text: str
    ts: int = 0

    def same_value(self, other: StoredValue | None) -> bool:
        """Whether ``other`` holds this value (its type and text), whatever its time."""
        return other is not None and self.type is other.type and self.text == other.text


@dataclass(frozen=True)
class NewEvent:
    """An accepted event, ready to store. ``properties`` is the JSON text
    :func:`userprops.events.encode_properties` gives."""

    euid: int
    event_name: str
    itime: int
    random_id: str | None
    app_key: str | None
    properties: str


@dataclass(frozen=True)
class StoredEvent(NewEvent):
    """A stored event; ``id`` orders events of one ``itime``, ``received_at`` is epoch ms."""

    id: int
    received_at: int


class NewChange(NamedTuple):
    """A change to record in the history (docs/history-and-webhooks.md): ``type`` is the
    attribute's type (None for a change without values, such as ``user.deleted``);
    ``old`` and ``new`` are stored texts (:func:`userprops.schema.encode`), None for an
    absent value."""

    project_id: int
    euid: int
    property: str
    op: str
    type: AttrType | None
    old: str | None
    new: str | None
    source: str


class StoredChange(NamedTuple):
    """A recorded change: ``seq`` numbers it in its project, ``at`` is epoch ms."""

    seq: int
    euid: int
    property: str
    op: str
    type: AttrType | None
    old: str | None
    new: str | None
    source: str
    at: int


@dataclass(frozen=True)
class Operator:
    """A person who may use the admin console; ``password_hash`` is argon2's encoding."""

    id: int
    name: str
    password_hash: str
    created_at: str


class AuditEntry(NamedTuple):
    """A recorded administrative action: ``at`` is epoch ms, ``actor`` an operator's name
    or ``cli``, ``details`` a JSON object's text."""

    id: int
    at: int
    actor: str
    action: str
    target: str
    details: str


WAITING = 1 << 62
"""The ``next_at`` of a pending delivery that waits for an earlier change of its user to
be delivered or dead-lettered: never due by itself."""


@dataclass(frozen=True)
class Webhook:
    """A webhook endpoint. ``properties`` None gets every change; ``fanned_seq`` is the
    last seq of its project whose deliveries were made; ``failing_since`` (epoch ms) and
    ``failures`` count the attempts that failed in a row since it last answered 2xx."""

    id: int
    project_id: int
    url: str
    secret: str
    properties: tuple[str, ...] | None
    enabled: bool
    disabled_reason: str | None
    fanned_seq: int
    failing_since: int | None
    failures: int
    created_at: str


DeliveryStatus = Literal["pending", "delivered", "dead"]


@dataclass(frozen=True)
class Delivery:
    """One change for one endpoint. Times are epoch ms; ``next_at`` is :data:`WAITING`
    while an earlier change of the user is pending for the endpoint, and ``lease_until``
    is in the future while an attempt is in flight."""

    id: int
    webhook_id: int
    seq: int
    euid: int
    status: DeliveryStatus
    attempts: int
    next_at: int
    lease_until: int
    last_status: int | None
    last_error: str | None
    created_at: int
    finished_at: int | None


class DueDelivery(NamedTuple):
    """A delivery claimed for its attempt number ``attempt``, with what sending it needs:
    the endpoint, the project's time zone and the change (None when the history no longer
    has it)."""

    id: int
    webhook_id: int
    euid: int
    seq: int
    attempt: int
    url: str
    secret: str
    project_id: int
    timezone: str
    change: StoredChange | None


OutcomeKind = Literal["delivered", "retry", "dead", "released"]


class Outcome(NamedTuple):
    """What became of an attempt: ``delivered``; ``retry`` at ``next_at``; ``dead``;
    or ``released`` (never sent, or its answer never seen: the process stopped), which
    frees the delivery for another attempt at once. ``status`` is the HTTP status
    answered, ``error`` why it failed."""

    delivery_id: int
    webhook_id: int
    euid: int
    attempt: int
    kind: OutcomeKind
    next_at: int = 0
    status: int | None = None
    error: str | None = None


class WebhookHealth(NamedTuple):
    """An endpoint after outcomes were recorded: failing since when, and how many
    attempts failed in a row (None and 0 once one succeeded)."""

    enabled: bool
    failing_since: int | None
    failures: int


class FanOut(NamedTuple):
    """What :meth:`Transaction.fan_out` did: deliveries made, and whether an endpoint had
    more changes than the limit (another run has more to do)."""

    deliveries: int
    more: bool


class DeliveryWork(NamedTuple):
    """What the deliverer has to do, read without taking anything: the projects with an
    enabled endpoint, whether one of those endpoints is behind its project's feed, and
    per enabled endpoint the earliest ``next_at`` of the deliveries a claim could take
    when due: not waiting, not in flight, no earlier pending change of their user (None
    when it has none)."""

    projects: frozenset[int]
    behind: bool
    next_due: dict[int, int | None]


class StoredSegment(NamedTuple):
    """A saved segment (docs/segments.md). ``condition`` is its JSON
    (:func:`userprops.conditions.to_wire`, DATETIME in UTC). Its members are exact for
    every EUID up to ``built_to``; None: for every EUID (the build is complete). While
    ``quiet``, the first build runs: it records no change. ``checked_ms`` (epoch ms): an
    instant at or before which no member was evaluated, since the build that started
    then; the sweep checks again from there what time alone can have changed (None:
    unknown, the sweep builds it again)."""

    id: int
    project_id: int
    name: str
    condition: str
    built_to: int | None
    quiet: bool
    created_at: str
    updated_at: str
    checked_ms: int | None


class LockedRead(NamedTuple):
    """:meth:`Transaction.lock_segment_values`: the values read, each project's segments
    version, and which of the (project id, EUID, segment id) memberships asked for hold."""

    values: dict[UserKey, dict[str, StoredValue]]
    versions: dict[int, int]
    members: set[tuple[int, int, int]]


class Transaction(abc.ABC):
    """Statements inside one transaction. Not thread-safe; used by one thread at a time."""

    # Projects and data sources

    @abc.abstractmethod
    def create_project(self, slug: str, schema_mode: SchemaMode, timezone: str) -> Project:
        """Raise :class:`userprops.errors.Conflict` if the slug exists."""

    @abc.abstractmethod
    def get_project(self, slug: str) -> Project | None: ...

    @abc.abstractmethod
    def get_project_by_id(self, project_id: int) -> Project | None: ...

    @abc.abstractmethod
    def list_projects(self) -> list[Project]: ...

    @abc.abstractmethod
    def update_project(
        self, project_id: int, *, schema_mode: SchemaMode | None, timezone: str | None
    ) -> None: ...

    @abc.abstractmethod
    def create_datasource(
        self, project_id: int, name: str, api_key: str, secret_hash: str
    ) -> DataSource:
        """Raise :class:`userprops.errors.Conflict` if the key or the (project, name) exists."""

    @abc.abstractmethod
    def get_datasource(self, api_key: str) -> DataSource | None: ...

    @abc.abstractmethod
    def list_datasources(self, project_id: int | None) -> list[DataSource]:
        """All data sources, or those of one project; oldest first."""

    @abc.abstractmethod
    def update_datasource(
        self, api_key: str, *, enabled: bool | None = None, secret_hash: str | None = None
    ) -> bool:
        """Change a data source; False when no data source has that key."""

    # Attribute definitions

    @abc.abstractmethod
    def define_attribute(self, project_id: int, name: str, kind: AttrType) -> AttrType:
        """Define ``name`` as ``kind`` unless it is defined; return the type it has now.

        Never changes the type of a defined attribute, even under concurrent calls.
        """

    @abc.abstractmethod
    def attribute_types(self, project_id: int, names: Sequence[str]) -> dict[str, AttrType]:
        """The defined types among ``names``; undefined names are left out."""

    @abc.abstractmethod
    def list_attributes(self, project_id: int) -> list[tuple[str, AttrType, str]]:
        """(name, type, created_at) of every attribute of the project, by name."""

    # Users and identities

    @abc.abstractmethod
    def create_user(self, project_id: int) -> int:
        """A new user in the project; returns its EUID, unique across the server."""

    @abc.abstractmethod
    def user_project(self, euid: int) -> int | None:
        """The project of a user, None when the EUID does not exist."""

    @abc.abstractmethod
    def has_user(self, project_id: int, euid: int) -> bool:
        """Whether the EUID is a user of that project; keyed by both, so on a database
        distributed by project it asks one node."""

    @abc.abstractmethod
    def lock_user(self, project_id: int, euid: int) -> bool:
        """Take the user's row for the rest of the transaction, so concurrent writers to
        one user are serialised; False when the user is not in that project."""

    @abc.abstractmethod
    def find_identity(self, project_id: int, name: str, value: str) -> int | None: ...

    @abc.abstractmethod
    def resolve_identities(
        self, keys: Sequence[IdentityKey], created: list[int] | None = None
    ) -> dict[IdentityKey, int]:
        """Get or create (register): the EUID holding each identity value of ``keys``,
        creating one new user for each value no user holds. Exactly one user per value,
        also under concurrent callers: a value another writer binds first is answered
        with that writer's user, and the user made for it here is removed. The users
        made and kept are appended to ``created``."""

    @abc.abstractmethod
    def list_users(self, project_id: int, after: int, limit: int) -> list[int]:
        """EUIDs of the project's users above ``after``, ascending, at most ``limit``."""

    @abc.abstractmethod
    def erase_user(self, project_id: int, euid: int) -> bool:
        """Erase a user of the project: its values, identities, contacts and events, and
        the values of its changes in the history (the changes themselves stay, with
        ``old`` and ``new`` emptied); the EUID is then unknown and its identity values
        free. False, and nothing done, when the user is not in the project."""

    @abc.abstractmethod
    def bind_identity(self, project_id: int, name: str, value: str, euid: int) -> int:
        """Bind ``value`` to ``euid`` unless it is bound; return the EUID it is bound to."""

    @abc.abstractmethod
    def user_identities(self, project_id: int, euid: int) -> list[tuple[str, str]]:
        """(identity name, value) pairs of a user."""

    @abc.abstractmethod
    def identities_of(
        self, project_id: int, euids: Sequence[int]
    ) -> dict[int, list[tuple[str, str]]]:
        """(identity name, value) pairs of each of ``euids`` that has any, by name then
        value."""

    # Values

    @abc.abstractmethod
    def get_values(
        self, project_id: int, euid: int, names: Sequence[str] | None = None
    ) -> dict[str, StoredValue]:
        """Stored values of a user: those among ``names``, or all when ``names`` is None."""

    @abc.abstractmethod
    def lock_values(
        self, wanted: Mapping[UserKey, Collection[str]]
    ) -> dict[UserKey, dict[str, StoredValue]]:
        """The group-commit read: lock every user of ``wanted`` ((project_id, euid) → the
        attribute names wanted) for the rest of the transaction, then read those values
        (with their ``ts``).
        Users that are not in that project are left out of the result; a user without any
        of the names maps to ``{}``. Locks are taken in one order (by project id, then
        EUID) so that two transactions locking overlapping sets wait for each other
        instead of deadlocking, and the values are read after every lock is granted, so
        they are the committed ones (on PostgreSQL, not in the statement that waited for
        the locks: under READ COMMITTED that statement keeps its older snapshot of other
        tables)."""

    @abc.abstractmethod
    def write_values(
        self,
        puts: Mapping[ValueKey, StoredValue],
        deletes: Collection[ValueKey],
        before: Mapping[ValueKey, StoredValue | None] | None = None,
    ) -> None:
        """The group-commit write: insert or overwrite ``puts`` (type, text and ``ts``, as
        given: no comparison of times here, the caller decided) and remove ``deletes``
        (absent ones are ignored), keyed by (project_id, euid, name), in as few statements
        as the backend can (one on PostgreSQL). A key is in at most one of the two.

        It keeps what segment queries read in step: each value's ``sort_key``
        (:func:`userprops.keys.sort_key`), and a LIST's elements as rows of
        ``user_list_items`` (those of a deleted key removed). ``before``, when the caller
        read them, holds the stored values the keys had (None: absent), so that a backend
        may write only the elements a LIST gained or lost."""

    def put_values(self, project_id: int, euid: int, values: dict[str, StoredValue]) -> None:
        """Insert or overwrite one user's values."""
        self.write_values({(project_id, euid, n): v for n, v in values.items()}, ())

    def delete_values(self, project_id: int, euid: int, names: Sequence[str]) -> None:
        """Remove one user's values; absent ones are ignored."""
        self.write_values({}, [(project_id, euid, n) for n in names])

    @abc.abstractmethod
    def lock_segment_values(
        self,
        wanted: Mapping[UserKey, Collection[str]],
        projects: Collection[int],
        members: Collection[tuple[int, int, int]],
    ) -> LockedRead:
        """:meth:`lock_values`, and in the same read the segments version of each of
        ``projects`` (taken as :meth:`segments_versions` does) and which of ``members``
        ((project id, EUID, segment id)) hold: what a write needs to keep saved segments'
        membership (userprops.segments), in one statement on PostgreSQL."""

    # Contacts (docs/contacts-events.md). One value of a contact name belongs to at most one
    # user of a project: the database enforces UNIQUE (project_id, name, value).

    @abc.abstractmethod
    def get_contacts(self, project_id: int, euid: int) -> dict[str, str]:
        """The contacts of a user, name to value, by name."""

    @abc.abstractmethod
    def bind_contact(self, project_id: int, euid: int, name: str, value: str) -> int:
        """Make ``value`` the user's ``name`` contact, replacing its previous one, unless
        another user of the project holds that value; return the EUID holding it now.

        All or nothing, also under concurrent calls: when another user holds the value
        (or takes it concurrently), nothing changes and that user's EUID is returned.
        """

    @abc.abstractmethod
    def clear_contact(self, project_id: int, euid: int, name: str) -> None:
        """Remove the user's ``name`` contact; absent is fine."""

    @abc.abstractmethod
    def find_contact(self, project_id: int, name: str, value: str) -> int | None:
        """The EUID of the project's user whose ``name`` contact is ``value`` (exactly)."""

    # Events (docs/contacts-events.md)

    @abc.abstractmethod
    def existing_users(self, project_id: int, euids: Sequence[int]) -> set[int]:
        """Those of ``euids`` that are users of the project."""

    @abc.abstractmethod
    def define_events(self, project_id: int, names: Sequence[str]) -> None:
        """Define event names that are not defined yet; defined ones are left alone."""

    @abc.abstractmethod
    def list_events_defined(self, project_id: int) -> list[tuple[str, str]]:
        """(event name, created_at) of every event definition of the project, by name."""

    @abc.abstractmethod
    def define_event_property(
        self, project_id: int, event_name: str, name: str, kind: AttrType
    ) -> AttrType:
        """Define property ``name`` of event ``event_name`` as ``kind`` unless it is
        defined (the event too); return the type it has now. Never changes a defined
        type, even under concurrent calls."""

    @abc.abstractmethod
    def event_property_types(
        self, project_id: int, event_name: str, names: Sequence[str]
    ) -> dict[str, AttrType]:
        """The defined types among ``names`` for that event; undefined names left out."""

    @abc.abstractmethod
    def list_event_properties(
        self, project_id: int, event_name: str | None
    ) -> list[tuple[str, str, AttrType, str]]:
        """(event name, property name, type, created_at), of one event or all, by names."""

    @abc.abstractmethod
    def known_random_ids(self, project_id: int, random_ids: Sequence[str]) -> set[str]:
        """Those of ``random_ids`` that a stored event of the project carries."""

    @abc.abstractmethod
    def insert_events(self, project_id: int, events: Sequence[NewEvent]) -> int:
        """Store events; return how many were stored. An event whose ``random_id`` a
        stored event of the project already carries (stored before, earlier in
        ``events``, or concurrently) is skipped, never stored twice and never an error."""

    @abc.abstractmethod
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
        """A user's events, newest first (``itime`` descending, then ``id`` descending):
        ``since <= itime < until`` where given, and strictly after the (itime, id)
        position ``before`` in that order, at most ``limit`` of them."""

    @abc.abstractmethod
    def delete_events_before(self, project_id: int, cutoff: int, limit: int) -> int:
        """Delete at most ``limit`` events of the project with ``itime < cutoff``;
        return how many were deleted (fewer than ``limit``: none are left)."""

    @abc.abstractmethod
    def set_event_retention(self, project_id: int, days: int | None) -> None:
        """Keep events ``days`` days (by ``itime``); None keeps them all."""

    @abc.abstractmethod
    def event_retention(self) -> dict[int, int]:
        """Project id to retention days, for every project that has a retention."""

    # History and the change feed (docs/history-and-webhooks.md)

    @abc.abstractmethod
    def record_changes(self, changes: Sequence[NewChange]) -> None:
        """Record changes, in the order given, as part of this transaction.

        Each is given its project's next ``seq`` so that seqs follow commit order: once a
        change with seq N can be read, no change of that project with a lower seq
        appears later, however many writers there are. A backend with concurrent writers
        (PostgreSQL) takes the project's counter row and holds it until the commit; it
        may send the statements with the commit itself, after every lock of the
        transaction's other statements."""

    @abc.abstractmethod
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
        """A user's changes, newest first: of ``prop`` only where given, with
        ``since <= at < until`` where given, with ``seq < before`` where given, at most
        ``limit``."""

    @abc.abstractmethod
    def list_changes(self, project_id: int, after: int, limit: int) -> list[StoredChange]:
        """The project's changes with ``seq > after``, oldest first, at most ``limit``."""

    @abc.abstractmethod
    def last_seq(self, project_id: int) -> int:
        """The highest seq handed out in the project (0 before any change)."""

    @abc.abstractmethod
    def delete_changes_before(self, project_id: int, cutoff: int, limit: int) -> int:
        """Delete at most ``limit`` changes of the project with ``at < cutoff``, keeping
        every change an enabled webhook endpoint has not fanned out yet and every change a
        pending or dead delivery needs; return how many were deleted (fewer than
        ``limit``: none are left)."""

    @abc.abstractmethod
    def set_history_retention(self, project_id: int, days: int | None) -> None:
        """Keep changes ``days`` days (by ``at``); None keeps them all."""

    @abc.abstractmethod
    def history_retention(self) -> dict[int, int]:
        """Project id to history retention days, for every project that has one."""

    # Segments (docs/segments.md; userprops.segments)

    @abc.abstractmethod
    def count_matching(self, project_id: int, cond: Condition, now: datetime) -> int:
        """How many of the project's users match ``cond`` at instant ``now``."""

    @abc.abstractmethod
    def match_page(
        self, project_id: int, cond: Condition, now: datetime, after: int, limit: int
    ) -> list[int]:
        """The first ``limit`` EUIDs above ``after`` of the project's users matching
        ``cond`` at ``now``, ascending."""

    @abc.abstractmethod
    def match_span(
        self, project_id: int, cond: Condition, now: datetime, low: int, high: int
    ) -> list[int]:
        """Every EUID ``low < euid <= high`` of the project's users matching ``cond``,
        ascending (a segment is built a span of users at a time)."""

    @abc.abstractmethod
    def user_after(self, project_id: int, after: int, skip: int) -> int | None:
        """The EUID of the project's ``skip``-th user above ``after`` (1: the next one),
        None when there are fewer."""

    @abc.abstractmethod
    def save_segment(
        self, project_id: int, name: str, condition: str, at_ms: int
    ) -> tuple[StoredSegment, bool]:
        """Create a segment, or replace the condition of the one of that name; either way
        its build starts again at instant ``at_ms`` (``built_to`` 0, ``checked_ms``
        ``at_ms``; a new segment is ``quiet``, a replaced one keeps its quiet only while
        its first build runs). Returns it and whether it is new. Bumps the project's
        segments version."""

    @abc.abstractmethod
    def get_segment(self, project_id: int, name: str) -> StoredSegment | None: ...

    @abc.abstractmethod
    def list_segments(self, project_id: int) -> list[StoredSegment]:
        """The project's segments, by name."""

    @abc.abstractmethod
    def segments_building(self) -> list[StoredSegment]:
        """Every segment of every project whose build has not finished."""

    @abc.abstractmethod
    def set_segment_built(self, segment_id: int, built_to: int | None) -> None:
        """Record how far a build went (None: done; the segment is no longer quiet), and
        bump its project's segments version."""

    @abc.abstractmethod
    def rebuild_segment(self, segment_id: int, at_ms: int) -> None:
        """Start the build of a built segment again at instant ``at_ms`` (``built_to`` 0,
        ``checked_ms`` ``at_ms``, recording changes): how a condition relative to now
        whose last check is unknown is checked again. Bumps the version."""

    @abc.abstractmethod
    def mark_segment_checked(self, segment_id: int, since_ms: int, at_ms: int) -> bool:
        """Set the ``checked_ms`` of a built segment to ``at_ms`` if it is still
        ``since_ms`` (no build started meanwhile: a replaced condition or a rebuild sets
        its own); whether it did."""

    @abc.abstractmethod
    def lock_segments(self, project_id: int) -> None:
        """Hold the project's saved segments until the transaction ends, against every
        writer reading them (:meth:`segments_versions`): a build's span is computed and
        stored while no write of the project changes its users. SQLite's single writer
        already does so; PostgreSQL takes an advisory lock that writers take shared."""

    @abc.abstractmethod
    def segments_versions(self, project_ids: Collection[int]) -> dict[int, int]:
        """Each project's segments version, which every change to its segments (a
        definition, a build's progress) bumps; on PostgreSQL taken under the shared side
        of :meth:`lock_segments` (held until the transaction ends), in project order."""

    @abc.abstractmethod
    def members_between(self, project_id: int, segment_id: int, low: int, high: int) -> list[int]:
        """The segment's members ``low < euid <= high``, ascending."""

    @abc.abstractmethod
    def write_members(
        self,
        entered: Collection[tuple[int, int, int]],
        left: Collection[tuple[int, int, int]],
    ) -> None:
        """Add ``entered`` and remove ``left`` memberships, each (project id, segment id,
        EUID); present or absent ones are ignored. One statement on PostgreSQL (deferred
        with the group-commit write, see :meth:`write_values`)."""

    @abc.abstractmethod
    def list_members(self, project_id: int, segment_id: int, after: int, limit: int) -> list[int]:
        """The segment's members above ``after``, ascending, at most ``limit``."""

    @abc.abstractmethod
    def count_members(self, project_id: int, segment_id: int) -> int: ...

    @abc.abstractmethod
    def user_segments(self, project_id: int, euid: int) -> list[str]:
        """The names of the segments the user is a member of, by name."""

    # Imports (see userprops.bulk)

    @abc.abstractmethod
    def import_checkpoint(self, project_id: int, name: str) -> tuple[int, str] | None:
        """(lines committed, digest of their bytes) of an import, None if it never ran."""

    @abc.abstractmethod
    def set_import_checkpoint(self, project_id: int, name: str, lines: int, digest: str) -> None:
        """Record where an import stands, in the transaction of the lines it counts."""

    # The admin console (docs/console.md)

    @abc.abstractmethod
    def create_operator(self, name: str, password_hash: str) -> Operator:
        """Raise :class:`userprops.errors.Conflict` if an operator has that name. Ids are
        never reused, also after a deletion."""

    @abc.abstractmethod
    def get_operator(self, name: str) -> Operator | None: ...

    @abc.abstractmethod
    def list_operators(self) -> list[Operator]:
        """Every operator, by name."""

    @abc.abstractmethod
    def delete_operator(self, name: str) -> bool:
        """Delete an operator and end its sessions; False when there is none of that name."""

    @abc.abstractmethod
    def set_operator_password(self, name: str, password_hash: str) -> bool:
        """Store a new password hash and end the operator's sessions; False when there is
        no operator of that name."""

    @abc.abstractmethod
    def create_session(
        self, session_id: str, operator_id: int, created_at: int, expires_at: int
    ) -> None:
        """Store a console session (``session_id`` is a digest of its token; times are
        epoch ms). Raise :class:`userprops.errors.Conflict` if the id exists."""

    @abc.abstractmethod
    def session_operator(self, session_id: str, now_ms: int) -> Operator | None:
        """The operator of a session that exists and has ``expires_at > now_ms``, else None."""

    @abc.abstractmethod
    def delete_session(self, session_id: str) -> None:
        """End a session; absent is fine."""

    @abc.abstractmethod
    def delete_expired_sessions(self, now_ms: int) -> int:
        """Delete every session with ``expires_at <= now_ms``; return how many."""

    @abc.abstractmethod
    def console_key(self, name: str, candidate: str) -> str:
        """The key stored under ``name``; ``candidate`` is stored first when there is none.
        Every caller gets the same key, also under concurrent first calls."""

    @abc.abstractmethod
    def record_audit(self, at: int, actor: str, action: str, target: str, details: str) -> None:
        """Append an entry to the audit log, as part of this transaction."""

    @abc.abstractmethod
    def list_audit(self, before: int | None, limit: int) -> list[AuditEntry]:
        """Audit entries newest first (by id), with ``id < before`` where given, at most
        ``limit``."""

    @abc.abstractmethod
    def user_counts(self) -> dict[int, int]:
        """Project id to its number of users, for every project that has any."""

    @abc.abstractmethod
    def change_counts(self, project_id: int, since: int) -> dict[int, int]:
        """The project's changes with ``at >= since`` (epoch ms), counted per minute: the
        minute (``at // 60000``) to its count, for minutes that have any."""

    # Webhook endpoints and their deliveries (docs/history-and-webhooks.md). A delivery is
    # pending until it is delivered or dead. Of the pending deliveries of one endpoint and
    # user, only the one with the lowest seq (the user's head) has a real ``next_at``; the
    # others wait (:data:`WAITING`) and the head's end makes the next one due: changes of
    # a user are delivered in order, other users' do not wait. Every change of which one
    # is the head (fan-out, outcomes, redelivery, enabling) takes the endpoint's row first,
    # so that two processes never disagree about it.

    @abc.abstractmethod
    def create_webhook(
        self, project_id: int, url: str, secret: str, properties: Sequence[str] | None
    ) -> Webhook:
        """A new enabled endpoint of the project that starts at the project's last seq: it
        gets the changes committed after this transaction. ``properties`` None gets every
        change; else only changes whose ``property`` is one of them. Raise
        :class:`userprops.errors.ProjectNotFound` when there is no such project."""

    @abc.abstractmethod
    def get_webhook(self, webhook_id: int) -> Webhook | None: ...

    @abc.abstractmethod
    def list_webhooks(self, project_id: int | None) -> list[Webhook]:
        """Every endpoint, or those of one project, by id."""

    @abc.abstractmethod
    def set_webhook_enabled(
        self, webhook_id: int, enabled: bool, reason: str | None, now: int
    ) -> bool:
        """Disable an endpoint with ``reason`` (its fan-out and attempts stop, its pending
        deliveries stay), or enable it: the reason and failure count are cleared, fan-out
        resumes after ``fanned_seq``, and pending deliveries waiting for a retry are due
        at ``now``. False when there is no such endpoint."""

    @abc.abstractmethod
    def delete_webhook(self, webhook_id: int) -> bool:
        """Delete an endpoint and every delivery of it; False when there is none."""

    @abc.abstractmethod
    def delivery_counts(self, webhook_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        """Per endpoint of ``webhook_ids``, its deliveries by status (absent: none)."""

    @abc.abstractmethod
    def delivery_work(self, now: int) -> DeliveryWork:
        """What is there to do as of ``now`` (a read: no lock, nothing written)."""

    @abc.abstractmethod
    def fan_out(self, now: int, limit: int) -> FanOut:
        """Make the deliveries of enabled endpoints behind their project's feed: for each
        one that no other transaction holds (taken for the rest of this one, without
        waiting), the deliveries of at most ``limit`` changes after its ``fanned_seq``
        that its properties match, due at ``now`` or waiting for the user's pending one;
        then ``fanned_seq`` moves past every change read. A delivery already made for a
        (endpoint, seq) is never made twice."""

    @abc.abstractmethod
    def claim_deliveries(
        self, now: int, lease_until: int, wanted: Mapping[int, int]
    ) -> list[DueDelivery]:
        """Claim due deliveries for an attempt: of each endpoint of ``wanted`` that is
        enabled, at most ``wanted[endpoint]`` pending ones with ``next_at <= now``, no
        attempt in flight (``lease_until <= now``) and no earlier pending change of their
        user, oldest ``next_at`` first; rows another transaction holds are skipped, never
        waited for. Each gets ``lease_until`` (no other claim takes it until then, or
        until its outcome releases it) and one more attempt."""

    @abc.abstractmethod
    def record_outcomes(self, outcomes: Sequence[Outcome], now: int) -> dict[int, WebhookHealth]:
        """Record attempts' outcomes (:class:`Outcome`). A success is recorded whatever
        happened meanwhile, unless the delivery is no longer pending; any other outcome
        only while the delivery is still at that attempt (a late answer of an attempt that
        was claimed again is ignored). A delivery that ends (delivered, dead) makes the
        next pending change of its user and endpoint due at ``now``. An endpoint with a
        success is no longer failing; one with failures only counts them, failing since
        ``now`` unless it already was. Returns the health of each endpoint concerned."""

    @abc.abstractmethod
    def list_deliveries(
        self, webhook_id: int, status: DeliveryStatus | None, limit: int, before: int | None
    ) -> list[Delivery]:
        """An endpoint's deliveries, newest first (by id), of one status where given,
        with ``id < before`` where given, at most ``limit``."""

    @abc.abstractmethod
    def get_delivery(self, delivery_id: int) -> Delivery | None: ...

    @abc.abstractmethod
    def redeliver(self, webhook_id: int, delivery_ids: Sequence[int] | None, now: int) -> int:
        """Queue again deliveries of the endpoint (those of ``delivery_ids``; None: every
        dead one): each becomes pending with no attempt made, due at ``now`` unless an
        earlier change of its user is pending for the endpoint (then after it, and the
        user's later pending changes after it); a pending one waiting for a retry becomes
        due at ``now``. Returns how many were queued."""

    @abc.abstractmethod
    def delete_deliveries_before(self, cutoff: int, limit: int) -> int:
        """Delete at most ``limit`` delivered or dead deliveries that ended before
        ``cutoff``; return how many were deleted (fewer than ``limit``: none are left)."""

    # Idempotency keys (see userprops.idempotency)

    @abc.abstractmethod
    def get_idempotent(self, datasource_id: int, key: str, now_ms: int) -> tuple[str, bytes] | None:
        """(fingerprint, result) stored under a data source's key; None when absent or
        expired (``expires_at <= now_ms``).

        Concurrent transactions asking for the same key are serialised from this call to
        their end, so that exactly one of them stores a result and the others find it:
        SQLite's single writer does so already; PostgreSQL takes
        ``pg_advisory_xact_lock`` on a hash of (datasource_id, key) first."""

    @abc.abstractmethod
    def put_idempotent(
        self, datasource_id: int, key: str, fingerprint: str, result: bytes, expires_ms: int
    ) -> None:
        """Store a result under a key, replacing an expired row of that key."""

    @abc.abstractmethod
    def sweep_idempotent(self, now_ms: int, limit: int) -> int:
        """Delete at most ``limit`` expired keys; return how many were deleted."""

    @abc.abstractmethod
    def count_rows(self) -> dict[str, int]:
        """Row counts per table of user data, for verification after a copy."""

    # Bulk copy between databases

    @abc.abstractmethod
    def dump_rows(self, table: str, chunk: int = 1000) -> Iterator[list[tuple[Any, ...]]]:
        """Every row of ``table`` (a key of :data:`TABLE_COLUMNS`), its columns in that
        order, in chunks of at most ``chunk`` rows, by primary key."""

    @abc.abstractmethod
    def load_rows(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows as :meth:`dump_rows` gives them, keeping ids and EUIDs; ids the
        database generates later continue after the largest one loaded."""


JobResult = Any | BaseException

_DEADLINE: ContextVar[float] = ContextVar("userprops_storage_deadline", default=math.inf)


@contextmanager
def within(deadline: float) -> Iterator[None]:
    """:meth:`Storage.run_batch`, :meth:`Storage.read_users` and :meth:`Storage.ping`
    called in this block (in this thread) finish by ``deadline`` (``time.monotonic()``),
    or raise :class:`userprops.errors.StorageUnavailable`. The batching threads set it to
    the deadline of the oldest request of the batch they serve."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def current_deadline() -> float:
    """The deadline of :func:`within`, or infinity outside one."""
    return _DEADLINE.get()


class Storage(abc.ABC):
    """A database: connections, transactions and migrations."""

    url: str
    # The most seconds a request may wait for this database, queueing included, before it
    # is answered StorageUnavailable; None: no bound (a local file, whose waits are
    # bounded by the disk).
    timeout: float | None = None

    @abc.abstractmethod
    def migrate(self, *, dry_run: bool = False) -> list[str]:
        """Apply pending numbered migrations in order; return their names. With
        ``dry_run``, apply nothing and return what would be applied."""

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]:
        """A write transaction: committed durably on normal exit, rolled back on error."""

    @abc.abstractmethod
    def read(self) -> AbstractContextManager[Transaction]:
        """A read-only snapshot; safe to use from several threads at once."""

    @abc.abstractmethod
    def read_users(self, keys: Sequence[UserKey]) -> list[dict[str, StoredValue] | None]:
        """For each (project id, EUID) of ``keys``, in order, every stored value of that
        user by name, in name order (what ``GET /v1/user/property`` shows); None when the
        EUID is not a user of that project. All from one snapshot, in one statement on both
        backends (on PostgreSQL one round trip for the whole batch of reads)."""

    def read_user(self, project_id: int, euid: int) -> dict[str, StoredValue] | None:
        """:meth:`read_users` of one user."""
        return self.read_users([(project_id, euid)])[0]

    @abc.abstractmethod
    def run_batch(self, jobs: Sequence[Callable[[Transaction], Any]]) -> list[JobResult]:
        """Run every job in one transaction and commit once (group commit).

        Each job runs as if in its own savepoint: a job that raises has its changes undone
        and its exception returned in its place; the others are kept. A backend may run a
        batch's jobs more than once (SQLite skips savepoints and, only when a failed job
        had written, runs the batch again with one per job), so a job must be a function
        of the transaction alone; the last run's results are returned. When the transaction
        itself fails (commit, connection, disk), nothing is applied and
        :class:`userprops.errors.StorageUnavailable` is raised for the whole batch.

        A backend may roll the batch back and run its jobs again (PostgreSQL does after a
        deadlock, or when a job fails): only the last run of each job counts, so a job must
        act on nothing but its transaction.
        """

    @abc.abstractmethod
    def watch_changes(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(project_id)`` from another thread whenever any process commits
        changes of a project (:meth:`Transaction.record_changes`), until :meth:`close`.
        A backend whose writers are all in this process (SQLite) has nothing to watch."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise :class:`userprops.errors.StorageUnavailable` if the database is unreachable."""

    @abc.abstractmethod
    def close(self) -> None: ...


_KINDS = {kind.value: kind for kind in AttrType}


def users_from_rows(
    count: int, rows: Iterable[tuple[int, str | None, Any, Any, Any]]
) -> list[dict[str, StoredValue] | None]:
    """The answer of :meth:`Storage.read_users` for ``count`` keys, from rows of (key's
    index, value name, type, text, ts): a row with no name for a user without values, no
    row for a key that is not a user of its project."""
    found: list[dict[str, StoredValue] | None] = [None] * count
    for i, name, kind, text, ts in rows:
        values = found[i]
        if values is None:
            values = found[i] = {}
        if name is not None:
            values[name] = StoredValue(_KINDS[kind], text, ts)
    return [None if v is None else dict(sorted(v.items())) for v in found]
