"""Several ``userprops serve`` processes on one PostgreSQL database, as behind a load
balancer: concurrent writes spread across all of them come out exact."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.api import basic_auth
from tests.support.serverproc import Server

SERVERS = 3


@pytest.fixture
def servers(pg_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    """Three servers started at once on one empty database: they migrate and bootstrap it
    concurrently, and exactly one of them creates the default data source."""
    env = {
        "USERPROPS_DATABASE": pg_url,
        "USERPROPS_LOG_LEVEL": "warning",
        "USERPROPS_DB_POOL_SIZE": "4",
    }
    with ThreadPoolExecutor(SERVERS) as starting:
        futures = [starting.submit(Server, tmp_path, env=env) for _ in range(SERVERS)]
    started = [f.result() for f in futures if f.exception() is None]
    try:
        for future in futures:
            future.result()  # raises why a server did not start
        yield started
    finally:
        for server in started:
            server.stop()


def _credentials(servers: list[Server]) -> dict[str, str]:
    found = [dict(re.findall(r"(api_key|api_secret):\s+(\S+)", s.output())) for s in servers]
    announced = [f for f in found if f]
    assert len(announced) == 1, [s.output() for s in servers]
    return announced[0]


async def test_concurrent_writes_across_three_servers_are_exact(
    servers: list[Server], pg_url: str
) -> None:
    creds = _credentials(servers)
    auth = basic_auth(creds["api_key"], creds["api_secret"])
    clients = [httpx.AsyncClient(base_url=s.url, headers=auth, timeout=30) for s in servers]
    answers: list[httpx.Response] = []
    gate = asyncio.Semaphore(24)

    async def post(i: int, path: str, body: object) -> dict[str, object]:
        async with gate:
            r = await clients[i % SERVERS].post(path, json=body)
        answers.append(r)
        return r.json()  # type: ignore[no-any-return]

    async def register(i: int, value: str) -> int:
        doc = await post(
            i, "/v1/user/register", {"identity_name": "user_id", "identity_values": [value]}
        )
        return doc["data"][0]["euid"]  # type: ignore[index, no-any-return]

    async def change(i: int, euid: int, op: str, properties: dict[str, object]) -> None:
        await post(i, "/v1/user/property", {"euid": euid, "type": op, "properties": properties})

    try:
        # Every identity value registered on every server at once: one EUID each.
        values = [f"user-{n}" for n in range(40)]
        registered = await asyncio.gather(*(register(i, v) for v in values for i in range(SERVERS)))
        by_value: dict[str, set[int]] = {}
        for k, euid in enumerate(registered):
            by_value.setdefault(values[k // SERVERS], set()).add(euid)
        assert all(len(euids) == 1 for euids in by_value.values()), by_value
        hot = [by_value[v].pop() for v in values[:3]]

        # Increases of a few hot users from every server, and list edits: each task adds
        # its own tags one by one, then removes every other one.
        async def increase(i: int, euid: int) -> None:
            await change(i, euid, "increase", {"score": 0.5 if i % 2 else 1})

        async def tagger(i: int, euid: int) -> None:
            tags = [f"s{i}-{n}" for n in range(12)]
            for tag in tags:
                await change(i, euid, "add", {"tags": [tag]})
            for tag in tags[1::2]:
                await change(i, euid, "remove", {"tags": [tag]})

        increases = [increase(i, euid) for euid in hot for i in range(60)]
        taggers = [tagger(i, euid) for euid in hot for i in range(SERVERS)]
        await asyncio.gather(*increases, *taggers)

        assert [r.status_code for r in answers] == [200] * len(answers)
        assert {r.json()["code"] for r in answers} == {0}
        for euid in hot:
            r = await clients[euid % SERVERS].get("/v1/user/property", params={"euid": euid})
            props = r.json()["data"]["properties"]
            assert Decimal(str(props["score"])) == 30 * 1 + 30 * Decimal("0.5")
            kept = {f"s{i}-{n}" for i in range(SERVERS) for n in range(0, 12, 2)}
            assert sorted(props["tags"]) == sorted(kept)
    finally:
        for client in clients:
            await client.aclose()

    with psycopg.connect(pg_url) as conn:
        users = conn.execute("SELECT count(*) FROM users").fetchone()
        identities = conn.execute("SELECT count(*) FROM identities").fetchone()
    assert users == identities == (len(values),)  # no orphan user from a lost race


async def test_the_feed_is_lossless_with_three_servers_committing_at_once(
    servers: list[Server],
) -> None:
    """Writes committed concurrently by three processes: a consumer paging the feed of
    one of them with after=last_seq sees every change exactly once, in seq order, and no
    change appears below a seq it has already passed."""
    creds = _credentials(servers)
    auth = basic_auth(creds["api_key"], creds["api_secret"])
    clients = [httpx.AsyncClient(base_url=s.url, headers=auth, timeout=60) for s in servers]
    writes = 600
    try:
        r = await clients[0].post(
            "/v1/user/register",
            json={"identity_name": "user_id", "identity_values": [f"f{n}" for n in range(30)]},
        )
        euids = [item["euid"] for item in r.json()["data"]]
        gate = asyncio.Semaphore(24)
        acknowledged = 0

        async def increase(i: int) -> None:
            nonlocal acknowledged
            body = {"euid": euids[i % len(euids)], "type": "increase", "properties": {"n": 1}}
            async with gate:
                answer = await clients[i % SERVERS].post("/v1/user/property", json=body)
            assert answer.json()["code"] == 0, answer.text
            acknowledged += 1

        async def consume() -> list[dict[str, object]]:
            seen: list[dict[str, object]] = []
            after = 0
            while len(seen) < writes:
                page = await clients[0].get(
                    "/v1/changes", params={"after": after, "limit": 50, "wait": 10}
                )
                data = page.json()["data"]
                seen += data["changes"]
                after = data["last_seq"]
            return seen

        consumer = asyncio.ensure_future(consume())
        await asyncio.gather(*(increase(i) for i in range(writes)))
        seen = await asyncio.wait_for(consumer, 120)
        assert acknowledged == writes
        assert [c["seq"] for c in seen] == list(range(1, writes + 1))
        per_user: dict[object, list[object]] = {}
        for change in seen:
            per_user.setdefault(change["euid"], []).append(change["new"])
        for values in per_user.values():  # each user's increases, one after the other
            assert values == list(range(1, len(values) + 1))
    finally:
        for client in clients:
            await client.aclose()
