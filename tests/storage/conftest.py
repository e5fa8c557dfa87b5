"""Fixtures of the storage tests."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.support.plans import Conn
from userprops.storage import Storage, open_storage


@pytest.fixture
def two(pg_url: str) -> Iterator[tuple[Storage, Storage]]:
    """Two storages on one migrated PostgreSQL database, as two API processes would be."""
    first, second = open_storage(pg_url), open_storage(pg_url)
    first.migrate()
    yield first, second
    first.close()
    second.close()


@pytest.fixture
def conn(pg_url: str) -> Iterator[Conn]:
    storage = open_storage(pg_url)
    storage.migrate()
    storage.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        if conn.info.parameter_status("is_superuser") != "on":
            pytest.skip("auto_explain needs a superuser (USERPROPS_TEST_POSTGRES_DSN)")
        conn.execute(
            "INSERT INTO projects (slug, schema_mode, timezone, created_at)"
            " VALUES ('p', 'auto', 'UTC', 'now')"
        )
        conn.execute("INSERT INTO users (project_id, created_at) VALUES (1, 'now'), (1, 'now')")
        yield conn
