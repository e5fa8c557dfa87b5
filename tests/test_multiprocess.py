"""Several ``userprops serve`` processes on one PostgreSQL database, as behind a load
balancer: concurrent writes spread across all of them come out exact."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from pgcluster import free_port

SERVERS = 3
STARTUP_SECONDS = 60


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    output: Path


def _start(database: str, folder: Path, index: int) -> Server:
    port = free_port()
    output = folder / f"serve-{index}.log"
    env = {
        **os.environ,
        "USERPROPS_DATABASE": database,
        "USERPROPS_HOST": "127.0.0.1",
        "USERPROPS_PORT": str(port),
        "USERPROPS_LOG_LEVEL": "warning",
        "USERPROPS_DB_POOL_SIZE": "4",
    }
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "userprops", "serve"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Server(f"http://127.0.0.1:{port}", process, output)


async def _wait_ready(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        for _ in range(STARTUP_SECONDS * 10):
            assert server.process.poll() is None, server.output.read_text()
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{server.url} not ready: {server.output.read_text()}")


@pytest.fixture
def servers(pg_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    """Three servers started at once on one empty database: they migrate and bootstrap it
    concurrently, and exactly one of them creates the default data source."""
    started = [_start(pg_url, tmp_path, i) for i in range(SERVERS)]
    try:
        yield started
    finally:
        for server in started:
            server.process.terminate()
        for server in started:
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


def _credentials(servers: list[Server]) -> dict[str, str]:
    found = [
        dict(re.findall(r"(api_key|api_secret):\s+(\S+)", s.output.read_text())) for s in servers
    ]
    announced = [f for f in found if f]
    assert len(announced) == 1, [s.output.read_text() for s in servers]
    return announced[0]


async def test_concurrent_writes_across_three_servers_are_exact(
    servers: list[Server], pg_url: str
) -> None:
    await asyncio.gather(*map(_wait_ready, servers))
    creds = _credentials(servers)
    token = base64.b64encode(f"{creds['api_key']}:{creds['api_secret']}".encode()).decode()
    clients = [
        httpx.AsyncClient(base_url=s.url, headers={"authorization": f"Basic {token}"}, timeout=30)
        for s in servers
    ]
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
