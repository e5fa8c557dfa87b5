"""Shared fixtures: a storage per backend, a started app, and an authenticated client; and
each test's kind, from its directory.

``storage_url`` is the one place that lists backends; every fixture above it runs on each.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.api import Api, make_settings, new_api
from tests.support.pgcluster import Cluster, Databases
from userprops.config import Settings
from userprops.http.app import App
from userprops.schema import SchemaMode
from userprops.storage import Storage, open_storage

HERE = Path(__file__).parent

# The kinds of test (registered as markers in pyproject.toml), by the directory they live
# in. Two directories hold one subject's tests with their own fixtures: tests/client (the
# client, against real servers) and tests/console (the admin console over HTTP); their
# modules of another kind say so, e.g. ``pytestmark = pytest.mark.unit``.
KINDS = ("unit", "storage", "http", "cli", "e2e")
KIND_OF_DIRECTORY = {**{kind: kind for kind in KINDS}, "client": "e2e", "console": "http"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its kind: the one it names, or else its directory's."""
    for item in items:
        if any(item.get_closest_marker(kind) for kind in KINDS):
            continue
        if not item.path.is_relative_to(HERE):
            continue  # collected from elsewhere (pytest PATH outside tests/): not ours
        directory = item.path.relative_to(HERE).parts[0]
        kind = KIND_OF_DIRECTORY.get(directory)
        if kind is None:
            raise pytest.UsageError(
                f"{item.nodeid}: a test lives in one of tests/{{{','.join(KINDS)}}}/"
                " (or tests/client/, tests/console/), which gives it its kind"
            )
        item.add_marker(kind)


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[Databases]:
    """Databases on the server of USERPROPS_TEST_POSTGRES_DSN, or else on a throwaway
    PostgreSQL cluster started for this test session."""
    dsn = os.environ.get("USERPROPS_TEST_POSTGRES_DSN")
    if dsn:
        databases = Databases(dsn)
        yield databases
        databases.close()
        return
    cluster = Cluster()
    try:
        cluster.start()
        yield Databases(cluster.dsn())
    finally:
        cluster.destroy()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this test's own, for a test that stops or freezes it."""
    own = Cluster()
    own.start()
    yield own
    own.destroy()


@pytest.fixture
def pg_url(pg_databases: Databases) -> Iterator[str]:
    """An empty PostgreSQL database of its own."""
    url = pg_databases.create()
    yield url
    pg_databases.release(url)


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        if "storage" in request.fixturenames:
            # The test migrates it (the storage fixture): take one migrated already, which
            # makes that a no-op (Databases: a database's schema is reused, not remade).
            databases: Databases = request.getfixturevalue("pg_databases")
            url = databases.create(migrated=True)
            request.addfinalizer(lambda: databases.release(url))
            return url
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def storage(storage_url: str) -> Iterator[Storage]:
    store = open_storage(storage_url)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def settings(storage_url: str) -> Settings:
    return make_settings(storage_url)


@pytest.fixture
async def app(settings: Settings, storage: Storage) -> AsyncIterator[App]:
    application = App(settings, storage)
    application.start()
    yield application
    application.stop()


@pytest.fixture
async def api(app: App) -> AsyncIterator[Api]:
    client = await new_api(app, "shop")
    yield client
    await client.http.aclose()


@pytest.fixture
async def strict_api(app: App) -> AsyncIterator[Api]:
    client = await new_api(app, "strict", SchemaMode.STRICT)
    yield client
    await client.http.aclose()
