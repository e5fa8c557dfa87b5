"""Administration: projects, data sources, attribute definitions, saved segments, and
looking users up.

Synchronous functions over a :class:`~userprops.storage.base.Storage`, called by the CLI
and the admin console. Each runs in one transaction, so they are safe beside a running
server on the same database. Each change is recorded in the audit log in its own
transaction, with ``actor`` as who did it (:mod:`userprops.audit`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, TypeVar

from userprops import audit, queries, segments, users
from userprops.auth import forget, hash_secret, new_key
from userprops.config import Limits
from userprops.errors import (
    Conflict,
    DataSourceNotFound,
    InvalidParameters,
    ProjectNotFound,
    UserNotFound,
)
from userprops.eventlist import ListQuery, read_events
from userprops.history import HistoryQuery, read_history
from userprops.schema import (
    AttrType,
    Rejected,
    SchemaMode,
    check_name,
    check_timezone,
)
from userprops.storage.base import DataSource, Project, Storage, Transaction

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
DEFAULT_PROJECT = "default"
RECENT_EVENTS = 10
CLI_SOURCE = audit.CLI  # who wrote, in the history, when the command line did
T = TypeVar("T")


@dataclass(frozen=True)
class Credentials:
    """A data source with its secret in clear: exists only when created or rotated."""

    datasource: DataSource
    project: Project
    api_secret: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project.slug,
            "name": self.datasource.name,
            "api_key": self.datasource.api_key,
            "api_secret": self.api_secret,
        }


def _project(tx: Transaction, slug: str) -> Project:
    project = tx.get_project(slug)
    if project is None:
        raise ProjectNotFound(f"no project {slug!r}")
    return project


def create_project(
    storage: Storage,
    slug: str,
    schema_mode: SchemaMode = SchemaMode.AUTO,
    timezone: str = "UTC",
    actor: str = audit.CLI,
) -> Project:
    if not SLUG_RE.fullmatch(slug):
        raise InvalidParameters("project slug: 1-64 of a-z, 0-9, _ and -, not starting with _/-")
    try:
        check_timezone(timezone)
    except ValueError as exc:
        raise InvalidParameters(str(exc)) from None
    with storage.transaction() as tx:
        project = tx.create_project(slug, schema_mode, timezone)
        audit.record(tx, actor, "project.create", slug, schema=schema_mode, timezone=timezone)
    return project


def get_project(storage: Storage, slug: str) -> Project:
    """The project of a slug; 40410 if none."""
    with storage.read() as tx:
        return _project(tx, slug)


def list_projects(storage: Storage) -> list[Project]:
    with storage.read() as tx:
        return tx.list_projects()


def create_datasource(
    storage: Storage, project_slug: str, name: str, actor: str = audit.CLI
) -> Credentials:
    if not name or len(name) > 128:
        raise InvalidParameters("data source name: 1 to 128 characters")
    secret = new_key()
    with storage.transaction() as tx:
        project = _project(tx, project_slug)
        ds = tx.create_datasource(project.id, name, new_key(), hash_secret(secret))
        audit.record(tx, actor, "datasource.create", ds.api_key, project=project.slug, name=name)
    return Credentials(ds, project, secret)


def bootstrap(storage: Storage) -> Credentials | None:
    """On an empty database, create the default project and a data source; else None."""
    try:
        with storage.transaction() as tx:
            if tx.list_projects():
                return None
            project = tx.create_project(DEFAULT_PROJECT, SchemaMode.AUTO, "UTC")
            secret = new_key()
            ds = tx.create_datasource(project.id, "default", new_key(), hash_secret(secret))
            audit.record(tx, audit.CLI, "bootstrap", project.slug, datasource=ds.api_key)
    except Conflict:  # another server process bootstrapped the same database meanwhile
        return None
    return Credentials(ds, project, secret)


def list_datasources(storage: Storage, project_slug: str | None) -> list[DataSource]:
    with storage.read() as tx:
        pid = None if project_slug is None else _project(tx, project_slug).id
        return tx.list_datasources(pid)


def set_datasource_enabled(
    storage: Storage, api_key: str, enabled: bool, actor: str = audit.CLI
) -> None:
    """Disabled, a data source's credentials stop working at once in this process, and
    within the auth cache TTL in other server processes."""
    with storage.transaction() as tx:
        if not tx.update_datasource(api_key, enabled=enabled):
            raise DataSourceNotFound(f"no data source with key {api_key!r}")
        audit.record(tx, actor, "datasource.enable" if enabled else "datasource.disable", api_key)
    forget(api_key)


def rotate_secret(storage: Storage, api_key: str, actor: str = audit.CLI) -> str:
    """A new secret for a data source; the old one stops working at once in this process,
    and within the auth cache TTL in other server processes. Returns the new secret, shown
    this once."""
    secret = new_key()
    with storage.transaction() as tx:
        if not tx.update_datasource(api_key, secret_hash=hash_secret(secret)):
            raise DataSourceNotFound(f"no data source with key {api_key!r}")
        audit.record(tx, actor, "datasource.rotate", api_key)
    forget(api_key)
    return secret


def define_attribute(
    storage: Storage, project_slug: str, name: str, kind: AttrType, actor: str = audit.CLI
) -> bool:
    """Define an attribute; True if it is new, False if it already had this type.
    Raises :class:`Conflict` if it is defined with another type."""
    try:
        check_name(name)
    except Rejected as reason:
        raise InvalidParameters(f"attribute name: {reason.reason}") from None
    with storage.transaction() as tx:
        pid = _project(tx, project_slug).id
        before = tx.attribute_types(pid, [name]).get(name)
        actual = tx.define_attribute(pid, name, kind)
        if before is None:
            audit.record(tx, actor, "attribute.define", project_slug, name=name, type=kind)
    if actual is not kind:
        raise Conflict(f"attribute {name} is already defined as {actual}")
    return before is None


def list_attributes(storage: Storage, project_slug: str) -> list[tuple[str, AttrType, str]]:
    with storage.read() as tx:
        return tx.list_attributes(_project(tx, project_slug).id)


@dataclass(frozen=True)
class UserDetails:
    """A user as an operator sees it: ``attributes`` are (name, type, value as the read
    API renders it), by name; ``recent_events`` the newest few, as the event list has them."""

    euid: int
    project: Project
    identities: list[tuple[str, str]]
    attributes: list[tuple[str, AttrType, Any]]
    contacts: dict[str, str]
    recent_events: list[dict[str, Any]]
    segments: list[str]  # the names of the saved segments it is in


def user_details(storage: Storage, euid: int) -> UserDetails:
    """Everything about a user, from one snapshot but for the events; 40404 if none."""
    from userprops.engine import render

    with storage.read() as tx:
        project = _user_project(tx, euid)
        identities = tx.user_identities(project.id, euid)
        stored = tx.get_values(project.id, euid)
        contacts = tx.get_contacts(project.id, euid)
        member_of = tx.user_segments(project.id, euid)
    tz = check_timezone(project.timezone)
    recent = read_events(storage, project.id, tz, ListQuery(euid, limit=RECENT_EVENTS))
    values = render(stored, tz)
    attributes = [(n, v.type, values[n]) for n, v in stored.items()]
    events = recent["events"]
    return UserDetails(euid, project, identities, attributes, contacts, events, member_of)


def show_user(storage: Storage, euid: int) -> dict[str, Any]:
    """A user's project, identities and attribute values, as the read API renders them."""
    user = user_details(storage, euid)
    return {
        "euid": euid,
        "project": user.project.slug,
        "identities": [{"identity_name": n, "identity_value": v} for n, v in user.identities],
        "properties": {n: v for n, _, v in user.attributes},
        "contacts": user.contacts,
        "recent_events": user.recent_events,
    }


def _user_project(tx: Transaction, euid: int) -> Project:
    pid = tx.user_project(euid)
    project = None if pid is None else tx.get_project_by_id(pid)
    if project is None:
        raise UserNotFound(f"no user with euid {euid}")
    return project


# Events


def list_events(storage: Storage, query: ListQuery) -> dict[str, Any]:
    """A page of a user's events, newest first, as ``GET /v1/event/list`` returns it."""
    with storage.read() as tx:
        project = _user_project(tx, query.euid)
    return read_events(storage, project.id, check_timezone(project.timezone), query)


def define_event_property(
    storage: Storage,
    project_slug: str,
    event_name: str,
    name: str,
    kind: AttrType,
    actor: str = audit.CLI,
) -> bool:
    """Define a property of an event (and the event); True if it is new, False if it
    already had this type. Raises :class:`Conflict` if it has another type."""
    for what, text in (("event name", event_name), ("property name", name)):
        try:
            check_name(text)
        except Rejected as reason:
            raise InvalidParameters(f"{what}: {reason.reason}") from None
    with storage.transaction() as tx:
        pid = _project(tx, project_slug).id
        before = tx.event_property_types(pid, event_name, [name]).get(name)
        actual = tx.define_event_property(pid, event_name, name, kind)
        if before is None:
            details = {"event": event_name, "name": name, "type": kind}
            audit.record(tx, actor, "event_property.define", project_slug, **details)
    if actual is not kind:
        raise Conflict(f"property {name} of event {event_name} is already defined as {actual}")
    return before is None


def list_event_names(storage: Storage, project_slug: str) -> list[tuple[str, str]]:
    """(event name, created_at) of every event the project has defined, by name."""
    with storage.read() as tx:
        return tx.list_events_defined(_project(tx, project_slug).id)


def list_event_properties(
    storage: Storage, project_slug: str, event_name: str | None
) -> list[tuple[str, str, AttrType, str]]:
    with storage.read() as tx:
        return tx.list_event_properties(_project(tx, project_slug).id, event_name)


def set_event_retention(
    storage: Storage, project_slug: str, days: int | None, actor: str = audit.CLI
) -> None:
    """Keep the project's events ``days`` days (by ``itime``); None keeps them all."""
    if days is not None and days < 1:
        raise InvalidParameters("event retention: a number of days from 1, or none")
    with storage.transaction() as tx:
        tx.set_event_retention(_project(tx, project_slug).id, days)
        audit.record(tx, actor, "project.event_retention", project_slug, days=days)


def set_history_retention(
    storage: Storage, project_slug: str, days: int | None, actor: str = audit.CLI
) -> None:
    """Keep the project's changes ``days`` days (by commit time); None keeps them all."""
    if days is not None and days < 1:
        raise InvalidParameters("history retention: a number of days from 1, or none")
    with storage.transaction() as tx:
        tx.set_history_retention(_project(tx, project_slug).id, days)
        audit.record(tx, actor, "project.history_retention", project_slug, days=days)


def retention(storage: Storage, project_slug: str) -> tuple[int | None, int | None]:
    """(event retention days, history retention days) of a project; None keeps all."""
    with storage.read() as tx:
        pid = _project(tx, project_slug).id
        return tx.event_retention().get(pid), tx.history_retention().get(pid)


def event_retention(storage: Storage, project_slug: str) -> int | None:
    return retention(storage, project_slug)[0]


# History


def list_history(storage: Storage, query: HistoryQuery) -> dict[str, Any]:
    """A page of a user's changes, newest first, as ``GET /v1/user/history`` returns it."""
    with storage.read() as tx:
        project = _user_project(tx, query.euid)
    return read_history(storage, project.id, check_timezone(project.timezone), query)


# Users


def list_users(storage: Storage, project_slug: str, after: int, limit: int) -> dict[str, Any]:
    """A page of the project's EUIDs, ascending (:func:`userprops.users.list_page`)."""
    with storage.read() as tx:
        pid = _project(tx, project_slug).id
    return users.list_page(storage, pid, after, limit)


def lookup_user(storage: Storage, project_slug: str, name: str, value: str) -> int:
    """The EUID of the project's user holding an identity value; 40404 if none."""
    with storage.read() as tx:
        pid = _project(tx, project_slug).id
    return int(users.lookup(storage, pid, users.LookupQuery(name, value))["euid"])


def lookup_contact(storage: Storage, project_slug: str, name: str, value: str) -> int:
    """The EUID of the project's user whose ``name`` contact is ``value``; 40404 if none."""
    with storage.read() as tx:
        euid = tx.find_contact(_project(tx, project_slug).id, name, value)
    if euid is None:
        raise UserNotFound(f"no user with {name} {value!r}")
    return euid


# The overview


@dataclass(frozen=True)
class ProjectActivity:
    """A project's users, and its changes per minute (``at // 60000`` to the count) since
    a time, for minutes that have any."""

    project: Project
    users: int
    changes: dict[int, int]


def activity(storage: Storage, since_ms: int) -> list[ProjectActivity]:
    """:class:`ProjectActivity` of every project, by id, from one snapshot."""
    with storage.read() as tx:
        counts = tx.user_counts()
        return [
            ProjectActivity(p, counts.get(p.id, 0), tx.change_counts(p.id, since_ms))
            for p in tx.list_projects()
        ]


def erase_user(storage: Storage, euid: int, source: str = CLI_SOURCE) -> str:
    """Erase a user (:func:`userprops.users.erase`); returns its project's slug."""
    with storage.transaction() as tx:
        project = _user_project(tx, euid)
        users.erase(tx, project.id, euid, source)
        audit.record(tx, source, "user.erase", str(euid), project=project.slug)
    return project.slug


# Segments (docs/segments.md)


def _project_zone(storage: Storage, project_slug: str) -> tuple[int, tzinfo]:
    with storage.read() as tx:
        project = _project(tx, project_slug)
    return project.id, check_timezone(project.timezone)


def save_segment(
    storage: Storage,
    project_slug: str,
    name: str,
    where: Any,
    limits: Limits,
    actor: str = audit.CLI,
    *,
    source: str = CLI_SOURCE,
    record: bool = True,
) -> dict[str, Any]:
    """Create or replace a saved segment and build its membership, a span of users per
    transaction (writes of a server beside it go on between spans):
    ``{"name", "created", "count"}``. Who entered and left a replaced condition are
    changes of ``source`` (none unless ``record``: the history is off)."""
    pid, tz = _project_zone(storage, project_slug)

    def run(job: Callable[[Transaction], T]) -> T:
        with storage.transaction() as tx:
            return job(tx)

    def define(tx: Transaction) -> bool:
        created = segments.define(tx, pid, name, where, limits, tz)
        audit.record(tx, actor, "segment.save", project_slug, name=name, created=created)
        return created

    created = run(define)
    segments.build(run, pid, name, source, record)
    count = queries.members(storage, pid, queries.MembersQuery(name, 0))["count"]
    return {"name": name, "created": created, "count": count}


def list_segments(storage: Storage, project_slug: str) -> list[dict[str, Any]]:
    pid, tz = _project_zone(storage, project_slug)
    return queries.list_all(storage, pid, tz)


def show_segment(storage: Storage, project_slug: str, name: str) -> dict[str, Any]:
    pid, tz = _project_zone(storage, project_slug)
    return queries.show(storage, pid, name, tz)


def segment_members(
    storage: Storage, project_slug: str, query: queries.MembersQuery
) -> dict[str, Any]:
    pid, _ = _project_zone(storage, project_slug)
    return queries.members(storage, pid, query)


def query_segment(
    storage: Storage, project_slug: str, query: queries.SegmentQuery, limits: Limits
) -> dict[str, Any]:
    pid, tz = _project_zone(storage, project_slug)
    return queries.run_query(storage, pid, tz, query, limits)
