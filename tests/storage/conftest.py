"""Fixtures of the storage tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from userprops.storage import Storage, open_storage


@pytest.fixture
def two(pg_url: str) -> Iterator[tuple[Storage, Storage]]:
    """Two storages on one migrated PostgreSQL database, as two API processes would be."""
    first, second = open_storage(pg_url), open_storage(pg_url)
    first.migrate()
    yield first, second
    first.close()
    second.close()
