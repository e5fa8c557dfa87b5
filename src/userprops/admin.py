"""Administration: projects, data sources, attribute definitions, and looking users up.

Synchronous functions over a :class:`~userprops.storage.base.Storage`, called by the CLI
(and later the admin console). Each runs in one transaction, so they are safe beside a
running server on the same database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from userprops.auth import forget, hash_secret, new_key
from userprops.errors import (
    Conflict,
    DataSourceNotFound,
    InvalidParameters,
    ProjectNotFound,
    UserNotFound,
)
from userprops.eventlist import ListQuery, read_events
from userprops.schema import AttrType, Rejected, SchemaMode, check_name, check_timezone
from userprops.storage.base import DataSource, Project, Storage, Transaction

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
DEFAULT_PROJECT = "default"
RECENT_EVENTS = 10


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
    storage: Storage, slug: str, schema_mode: SchemaMode = SchemaMode.AUTO, timezone: str = "UTC"
) -> Project:
    if not SLUG_RE.fullmatch(slug):
        raise InvalidParameters("project slug: 1-64 of a-z, 0-9, _ and -, not starting with _/-")
    try:
        check_timezone(timezone)
    except ValueError as exc:
        raise InvalidParameters(str(exc)) from None
    with storage.transaction() as tx:
        return tx.create_project(slug, schema_mode, timezone)


def list_projects(storage: Storage) -> list[Project]:
    with storage.read() as tx:
        return tx.list_projects()


def create_datasource(storage: Storage, project_slug: str, name: str) -> Credentials:
    if not name or len(name) > 128:
        raise InvalidParameters("data source name: 1 to 128 characters")
    secret = new_key()
    with storage.transaction() as tx:
        project = _project(tx, project_slug)
        ds = tx.create_datasource(project.id, name, new_key(), hash_secret(secret))
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
    except Conflict:  # another server process bootstrapped the same database meanwhile
        return None
    return Credentials(ds, project, secret)


def list_datasources(storage: Storage, project_slug: str | None) -> list[DataSource]:
    with storage.read() as tx:
        pid = None if project_slug is None else _project(tx, project_slug).id
        return tx.list_datasources(pid)


def set_datasource_enabled(storage: Storage, api_key: str, enabled: bool) -> None:
    """Disabled, a data source's credentials stop working at once in this process, and
    within the auth cache TTL in other server processes."""
    with storage.transaction() as tx:
        if not tx.update_datasource(api_key, enabled=enabled):
            raise DataSourceNotFound(f"no data source with key {api_key!r}")
    forget(api_key)


def rotate_secret(storage: Storage, api_key: str) -> str:
    """A new secret for a data source; the old one stops working at once in this process,
    and within the auth cache TTL in other server processes. Returns the new secret, shown
    this once."""
    secret = new_key()
    with storage.transaction() as tx:
        if not tx.update_datasource(api_key, secret_hash=hash_secret(secret)):
            raise DataSourceNotFound(f"no data source with key {api_key!r}")
    forget(api_key)
    return secret


def define_attribute(storage: Storage, project_slug: str, name: str, kind: AttrType) -> bool:
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
    if actual is not kind:
        raise Conflict(f"attribute {name} is already defined as {actual}")
    return before is None


def list_attributes(storage: Storage, project_slug: str) -> list[tuple[str, AttrType, str]]:
    with storage.read() as tx:
        return tx.list_attributes(_project(tx, project_slug).id)


def show_user(storage: Storage, euid: int) -> dict[str, Any]:
    """A user's project, identities and attribute values, as the read API renders them."""
    from userprops.engine import render

    with storage.read() as tx:
        project = _user_project(tx, euid)
        identities = tx.user_identities(project.id, euid)
        stored = tx.get_values(project.id, euid)
        contacts = tx.get_contacts(project.id, euid)
    tz = check_timezone(project.timezone)
    recent = read_events(storage, project.id, tz, ListQuery(euid, limit=RECENT_EVENTS))
    return {
        "euid": euid,
        "project": project.slug,
        "identities": [{"identity_name": n, "identity_value": v} for n, v in identities],
        "properties": render(stored, tz),
        "contacts": contacts,
        "recent_events": recent["events"],
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
    storage: Storage, project_slug: str, event_name: str, name: str, kind: AttrType
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


def set_event_retention(storage: Storage, project_slug: str, days: int | None) -> None:
    """Keep the project's events ``days`` days (by ``itime``); None keeps them all."""
    if days is not None and days < 1:
        raise InvalidParameters("event retention: a number of days from 1, or none")
    with storage.transaction() as tx:
        tx.set_event_retention(_project(tx, project_slug).id, days)


def event_retention(storage: Storage, project_slug: str) -> int | None:
    with storage.read() as tx:
        return tx.event_retention().get(_project(tx, project_slug).id)
