"""The benchmark's segments part: the preload fills sort keys and list elements on both
backends (so queries over preloaded users answer what the reference answers), and its
conditions and query plans come out as the benchmark reports them."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bench import segments as bench_segments
from bench.preload import preload, preload_postgres

from userprops.conditions import matches
from userprops.config import Limits
from userprops.schema import AttrType, SchemaMode, decode
from userprops.segments import parse_where
from userprops.storage import Storage, sqlite_path


def test_queries_over_preloaded_users_answer_as_the_reference(
    storage: Storage, storage_url: str
) -> None:
    with storage.transaction() as tx:
        pid = tx.create_project("bench", SchemaMode.AUTO, "UTC").id
        for name in ("counter", "points"):  # what the write scenario defines
            tx.define_attribute(pid, name, AttrType.NUMBER)
    if storage_url.startswith("sqlite"):
        euids = preload(sqlite_path(storage_url), pid, 84, chunk=30, progress=False)
    else:
        euids = preload_postgres(storage_url, pid, 84, chunk=30, progress=False)
    now = datetime.now(UTC)
    found: dict[str, int] = {}
    with storage.read() as tx:
        users = {
            e: {n: decode(v.type, v.text) for n, v in tx.get_values(pid, e).items()} for e in euids
        }
        for name, where in {
            "two_leaves": bench_segments.TWO_LEAVES,
            **bench_segments.SAVED,
        }.items():
            cond = parse_where(tx, pid, where, Limits(), UTC)
            expected = [e for e in euids if matches(cond, users[e], now)]
            assert tx.match_page(pid, cond, now, 0, 1000) == expected, where
            assert tx.count_matching(pid, cond, now) == len(expected), where
            found[name] = len(expected)
    assert (found["golden"], found["adults"], found["two_leaves"]) == (12, 14, 2)  # 1/7, 1/6, 1/42
    plans = bench_segments.explain(storage_url, "bench")
    assert set(plans) == {"count", "page"} and all(plans.values())
    # What the benchmark does before each write run of the ratio: on SQLite the WAL is
    # emptied; on PostgreSQL the tables it vacuums exist and the checkpoint is allowed.
    with storage.transaction() as tx:  # something in the WAL
        tx.define_attribute(pid, "settled", AttrType.STRING)
    wal = Path(sqlite_path(storage_url) + "-wal") if storage_url.startswith("sqlite") else None
    assert wal is None or wal.stat().st_size > 0
    assert bench_segments.settle(storage_url) >= 0
    assert wal is None or wal.stat().st_size == 0


def test_the_benchmark_client_survives_a_server_closing_idle_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between phases (a VACUUM, an EXPLAIN ANALYZE) the server closes the client's idle
    connection; the next request opens a new one instead of failing on the closed one
    (which ended the benchmark silently: click takes EPIPE for its own closed stdout)."""
    answer = b'{"code":0,"data":{"n":1}}'
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)
    listener = socket.create_server(("127.0.0.1", 0))
    served: list[int] = []

    def serve() -> None:
        for _ in range(2):  # one request per connection, then it is closed, silently
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(reply)
                served.append(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setattr(bench_segments, "IDLE", 0.0)
    client = bench_segments.Client(listener.getsockname()[1], "token")
    try:
        assert client.post("/v1/segment/query", {})[1] == {"n": 1}
        time.sleep(0.05)  # idle: the server has closed the first connection by now
        assert client.post("/v1/segment/query", {})[1] == {"n": 1}
    finally:
        client.close()
        listener.close()
    thread.join(5)
    assert served == [1, 1]
