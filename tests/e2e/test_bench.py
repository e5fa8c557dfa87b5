"""The benchmark's pieces that run without wrk but with a database: the bulk preload (read
back through the API) and the benchmark's own PostgreSQL cluster. The pure ones:
tests/unit/test_bench.py."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
from bench.pgcluster import TUNED, Cluster
from bench.preload import ATTRIBUTES, preload

from tests.support.api import api_over


async def test_preloaded_users_are_read_and_updated_through_the_api(tmp_path: Path) -> None:
    path = tmp_path / "pre.db"
    async with api_over(f"sqlite:///{path}") as api:
        assert api.app.services is not None
        with api.app.services.storage.read() as tx:
            project = tx.get_project("shop")
        assert project is not None
        euids = preload(str(path), project.id, 50, chunk=20, progress=False)
        assert len(euids) == 50
        props = await api.props(euids[7])
        assert sorted(props) == sorted(ATTRIBUTES)
        assert isinstance(props["age"], int)
        assert isinstance(props["tags"], list)
        r = await api.set(euids[7], "increase", {"age": 1})
        assert r.json()["code"] == 0
        assert (await api.props(euids[7]))["age"] == props["age"] + 1
        assert await api.register("pre-7") == [euids[7]]


def test_the_benchmark_cluster_is_durable_tuned_pinned_and_removed_afterwards() -> None:
    last_cpu = str((os.cpu_count() or 1) - 1)
    cluster = Cluster(durable=True, cpus=last_cpu)
    try:
        cluster.start(*TUNED)  # as scripts/bench --postgres starts it
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            settings = conn.execute(
                "SELECT current_setting('fsync'), current_setting('full_page_writes'),"
                " current_setting('listen_addresses'), current_setting('shared_buffers'),"
                " current_setting('max_wal_size')"
            ).fetchone()
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert backend is not None
            # The backend serving this connection, started after the pinning, inherits it.
            assert os.sched_getaffinity(backend[0]) == {int(last_cpu)}
    finally:
        cluster.destroy()
    assert settings == ("on", "on", "127.0.0.1", "2GB", "8GB")
    assert not cluster.root.exists()
