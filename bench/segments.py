"""The segments part of the benchmark (``--segments``, with ``--preload``): on the
preloaded users, the latency of a two-leaf count and of pages of 1,000 EUIDs, the query
plans the database chose, the time to build 10 saved segments, and the write scenario
again with those 10 segments saved (its ratio to the run without them)."""

from __future__ import annotations

import http.client
import json
import sqlite3
import statistics
import time
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

from userprops.conditions import parse
from userprops.config import Limits
from userprops.segments import parse_where
from userprops.storage import open_storage, sqlite_path

# What the preload holds (bench/preload.py cycles each attribute's samples by EUID):
# plan = "gold" for 1 user in 7, age between 18 and 65 (only 42 of the samples) for 1 in
# 6, both for 1 in 42.
GOLD = {"property": "plan", "op": "eq", "value": "gold"}
ADULT = {"property": "age", "op": "between", "value": [18, 65]}
TWO_LEAVES = {"and": [ADULT, GOLD]}
PAGE = 1000
TIMED = 7  # requests per figure; the median is the figure
# Ten saved segments over the attributes the write scenario writes, so that its requests
# re-evaluate them: a set touches six, an increase two, an add two.
SAVED: dict[str, Any] = {
    "golden": GOLD,
    "adults": ADULT,
    "golden_adults": TWO_LEAVES,
    "parisians": {"property": "city", "op": "eq", "value": "Paris"},
    "not_free": {"not": {"property": "plan", "op": "eq", "value": "free"}},
    "active": {"property": "last_seen", "op": "within_last_days", "value": 30},
    "big_spenders": {"property": "points", "op": "gte", "value": 500},
    "loyal": {"property": "counter", "op": "gte", "value": 10},
    "tagged": {"property": "tags", "op": "has", "value": "t1"},
    "vip_tags": {"property": "tags", "op": "has_any", "value": ["t5", "t9"]},
}


IDLE = 1.0
"""Seconds after which the client opens a new connection rather than reuse its last one:
the server closes a connection idle for its keep-alive time (5 s), and a request sent on
it then fails (EPIPE). Between the benchmark's phases (a VACUUM, an EXPLAIN ANALYZE, a
write run) the connection sits idle far longer."""


class Client:
    """Sequential JSON requests to a server, timed."""

    def __init__(self, port: int, token: str) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self._headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self._last = time.monotonic()

    def post(self, path: str, body: Any) -> tuple[float, Any]:
        if time.monotonic() - self._last > IDLE:
            self._conn.close()  # the next request connects again (not timed)
            self._conn.connect()
        started = time.perf_counter()
        self._conn.request("POST", path, json.dumps(body), self._headers)
        answer = json.loads(self._conn.getresponse().read())
        elapsed = time.perf_counter() - started
        self._last = time.monotonic()
        if answer.get("code") != 0:
            raise RuntimeError(f"{path} failed: {answer}")
        return elapsed, answer["data"]

    def close(self) -> None:
        self._conn.close()


def _figure(seconds: list[float]) -> dict[str, float] | None:
    if not seconds:
        return None  # too few users for a second page
    ms = sorted(s * 1000 for s in seconds)
    return {"median_ms": round(statistics.median(ms), 1), "min_ms": round(ms[0], 1),
            "max_ms": round(ms[-1], 1)}  # fmt: skip


def measure_queries(client: Client) -> dict[str, Any]:
    """The two-leaf count, the first page (count included) and following pages."""

    def timed(where: Any, limit: int) -> list[tuple[float, Any]]:
        body = {"where": where, "limit": limit}
        return [client.post("/v1/segment/query", body) for _ in range(TIMED)]

    counts = timed(TWO_LEAVES, 0)
    firsts = timed(TWO_LEAVES, PAGE)
    cursor = firsts[-1][1]["next_cursor"]
    pages: list[float] = []
    while cursor and len(pages) < TIMED:
        elapsed, data = client.post(
            "/v1/segment/query", {"where": TWO_LEAVES, "limit": PAGE, "cursor": cursor}
        )
        assert len(data["euids"]) == PAGE or data["next_cursor"] is None
        pages.append(elapsed)
        cursor = data["next_cursor"]
    single = timed(ADULT, PAGE)
    return {
        "condition": TWO_LEAVES,
        "matches": counts[0][1]["count"],
        "count": _figure([t for t, _ in counts]),
        "first_page_with_count": _figure([t for t, _ in firsts]),
        "next_pages": _figure(pages),
        "range_alone_first_page": _figure([t for t, _ in single]),
    }


def explain(url: str, slug: str) -> dict[str, list[str]]:
    """The plans the database makes for the count and a page of the two-leaf condition."""
    storage = open_storage(url)
    try:
        with storage.read() as tx:
            project = tx.get_project(slug)
            assert project is not None
            cond = parse_where(tx, project.id, TWO_LEAVES, Limits(), UTC)
            compiler = tx._compiler(project.id, datetime.now(UTC))  # type: ignore[attr-defined]
            statements = {
                "count": compiler.count(compiler.plan(cond, paged=False)),
                "page": compiler.page(compiler.plan(cond, paged=True), 500_000, PAGE),
            }
            plans = {}
            for name, (sql, params) in statements.items():
                plans[name] = _explain(tx, url, sql, params)
    finally:
        storage.close()
    return plans


def _explain(tx: Any, url: str, sql: str, params: list[Any]) -> list[str]:
    if url.startswith("sqlite"):
        rows = tx._all("EXPLAIN QUERY PLAN " + sql, params)
        return [str(row[-1]) for row in rows]
    rows = tx._query("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params)
    return [str(row[0]) for row in rows]


def save_segments(client: Client) -> dict[str, Any]:
    """Create the ten segments through the API; the seconds each took (its build)."""
    built: dict[str, Any] = {}
    for name, where in SAVED.items():
        elapsed, data = client.post("/v1/segment", {"name": name, "where": where})
        built[name] = {"seconds": round(elapsed, 1), "members": data["count"]}
    return built


VALUE_TABLES = ("user_values", "user_list_items")
"""What the write scenario changes and segment queries read."""
SEGMENT_TABLES = ("segment_members", "segments", "projects", "changes")
"""What the ten segment builds fill."""


def vacuum(url: str, tables: tuple[str, ...]) -> float:
    """``VACUUM ANALYZE`` of ``tables`` on PostgreSQL; the seconds it took."""
    import psycopg

    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"VACUUM ANALYZE {table}")
    return round(time.monotonic() - started, 1)


def settle(url: str) -> float:
    """Bring the database to the same state before each of the two write runs whose ratio
    is the figure (without and with the saved segments), so that neither pays for what
    the other left: on PostgreSQL a ``VACUUM ANALYZE`` of the value and segment tables,
    then a ``CHECKPOINT`` (both runs start at the same point of the checkpoint cycle, with
    the same full-page writes ahead); on SQLite a checkpoint that empties the WAL. The
    seconds it took."""
    started = time.monotonic()
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(sqlite_path(url), timeout=60)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    else:
        import psycopg

        vacuum(url, VALUE_TABLES + SEGMENT_TABLES)
        with psycopg.connect(url, autocommit=True) as conn:
            try:
                conn.execute("CHECKPOINT")
            except psycopg.errors.InsufficientPrivilege:
                pass  # --database as a role without pg_checkpoint: vacuumed only
    return round(time.monotonic() - started, 1)


def check_condition() -> None:
    """The benchmark's conditions parse (so a typo fails before minutes of preload)."""
    types = {"plan": "STRING", "age": "NUMBER", "city": "STRING", "last_seen": "DATETIME",
             "points": "NUMBER", "counter": "NUMBER", "tags": "LIST"}  # fmt: skip
    from userprops.schema import AttrType

    kinds = {name: AttrType(kind) for name, kind in types.items()}
    for where in SAVED.values():
        parse(where, kinds, Limits(), UTC)
