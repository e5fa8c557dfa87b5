"""The storage contract. Every backend implements :class:`Storage` and
:class:`Transaction`; tests/storage runs one suite against each.

Rules every backend keeps:

- A write transaction is all or nothing. Its changes are durable when the method that
  ends it returns (SQLite WAL with ``synchronous=FULL``; PostgreSQL with
  ``synchronous_commit=on``).
- Values are TEXT in the form :func:`userprops.schema.encode` gives, one row per
  (project, euid, attribute); every statement on user data is keyed by project and EUID.
- A failure of the database itself (unreachable, disk full, I/O error) is raised as
  :class:`userprops.errors.StorageUnavailable`; nothing of that transaction is applied.
- Uniqueness is enforced by the database: a project slug, an API key, an identity value
  per project and identity name.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from userprops.schema import AttrType, SchemaMode

T = TypeVar("T")


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


@dataclass(frozen=True)
class StoredValue:
    type: AttrType
    text: str


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
    def lock_user(self, project_id: int, euid: int) -> bool:
        """Take the user's row for the rest of the transaction, so concurrent writers to
        one user are serialised; False when the user is not in that project."""

    @abc.abstractmethod
    def find_identity(self, project_id: int, name: str, value: str) -> int | None: ...

    @abc.abstractmethod
    def bind_identity(self, project_id: int, name: str, value: str, euid: int) -> int:
        """Bind ``value`` to ``euid`` unless it is bound; return the EUID it is bound to."""

    @abc.abstractmethod
    def user_identities(self, project_id: int, euid: int) -> list[tuple[str, str]]:
        """(identity name, value) pairs of a user."""

    # Values

    @abc.abstractmethod
    def get_values(
        self, project_id: int, euid: int, names: Sequence[str] | None = None
    ) -> dict[str, StoredValue]:
        """Stored values of a user: those among ``names``, or all when ``names`` is None."""

    @abc.abstractmethod
    def put_values(self, project_id: int, euid: int, values: dict[str, StoredValue]) -> None:
        """Insert or overwrite values."""

    @abc.abstractmethod
    def delete_values(self, project_id: int, euid: int, names: Sequence[str]) -> None:
        """Remove values; absent ones are ignored."""

    @abc.abstractmethod
    def count_rows(self) -> dict[str, int]:
        """Row counts per table of user data, for verification after a copy."""


JobResult = Any | BaseException


class Storage(abc.ABC):
    """A database: connections, transactions and migrations."""

    url: str

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
    def run_batch(self, jobs: Sequence[Callable[[Transaction], Any]]) -> list[JobResult]:
        """Run every job in one transaction and commit once (group commit).

        Each job runs as if in its own savepoint: a job that raises has its changes undone
        and its exception returned in its place; the others are kept. A backend may run a
        batch's jobs more than once (SQLite skips savepoints and, only when a failed job
        had written, runs the batch again with one per job), so a job must be a function
        of the transaction alone; the last run's results are returned. When the transaction
        itself fails (commit, connection, disk), nothing is applied and
        :class:`userprops.errors.StorageUnavailable` is raised for the whole batch.
        """

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise :class:`userprops.errors.StorageUnavailable` if the database is unreachable."""

    @abc.abstractmethod
    def close(self) -> None: ...
