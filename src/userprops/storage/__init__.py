"""Storage backends, chosen by database URL.

``sqlite:///relative/path`` and ``sqlite:////absolute/path`` open the embedded backend;
``postgresql://...`` the PostgreSQL one, whose driver is imported only then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

from userprops.storage.base import DataSource, Project, Storage, StoredValue, Transaction

__all__ = [
    "DataSource",
    "Migration",
    "Project",
    "Storage",
    "StoredValue",
    "Transaction",
    "migrations",
    "open_storage",
    "redact_url",
    "sqlite_path",
]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(backend: str) -> list[Migration]:
    """The numbered ``NNNN_name.sql`` files of a backend, in order."""
    folder = resources.files("userprops.storage") / "migrations" / backend
    found = []
    for entry in folder.iterdir():
        m = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if m:
            found.append(Migration(int(m[1]), m[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda mig: mig.version)


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///`` URL (three slashes: relative, four: absolute)."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite URL: {url!r}")
    path = url.removeprefix("sqlite:///")
    if not path:
        raise ValueError("sqlite URL without a path; use sqlite:///userprops.db")
    return path


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit for logs and terminals."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


POSTGRES_EXTRA = (
    "in a checkout, scripts/install postgres (or pip install '.[postgres]');"
    " from a wheel, pip install 'userprops-<version>-py3-none-any.whl[postgres]'"
)


def open_storage(url: str, *, timeout: float = 5.0, pool_size: int = 10) -> Storage:
    """Open (not yet migrate) the database at ``url``.

    ``timeout`` and ``pool_size`` apply to PostgreSQL: the most seconds to wait for a
    connection or a statement, and the most connections this process opens.
    Raises ValueError for an unsupported URL, or a PostgreSQL URL without the driver.
    """
    if url.startswith("sqlite:"):
        from userprops.storage.sqlite import SqliteStorage

        return SqliteStorage(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from userprops.storage.postgres import PostgresStorage
        except ImportError as exc:
            raise ValueError(
                f"PostgreSQL needs the postgres extra ({exc.name} is missing): {POSTGRES_EXTRA}"
            ) from exc
        return PostgresStorage(url, timeout=timeout, pool_size=pool_size)
    raise ValueError(
        f"unsupported database URL {redact_url(url)!r}; use sqlite:///path or postgresql://..."
    )
