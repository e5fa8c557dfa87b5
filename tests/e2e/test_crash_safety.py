"""Crash safety: SIGKILL the server under concurrent writes, restart it, and check that
every write answered ``code: 0`` is there, and that retrying with the same
Idempotency-Key makes every increase count exactly once."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.liveserver import Server, live_server

WRITERS = 8
KILL_AFTER_ACKS = 300  # the kill lands while every writer has a request in flight


@dataclass
class Sent:
    key: str
    body: bytes
    acked: bool = False


@dataclass
class Load:
    increases: list[Sent] = field(default_factory=list)
    last_set_acked: dict[int, int] = field(default_factory=dict)
    last_set_sent: dict[int, int] = field(default_factory=dict)
    acks: int = 0
    killed: bool = False


async def post(client: httpx.AsyncClient, server: Server, sent: Sent) -> bool:
    """True when the server answered code 0; False when it answered nothing."""
    try:
        r = await client.post(
            "/v1/user/property",
            content=sent.body,
            headers={**server.auth_header, "idempotency-key": sent.key},
        )
    except httpx.TransportError:
        return False
    assert r.json()["code"] == 0, r.text
    return True


async def writer(
    n: int, client: httpx.AsyncClient, server: Server, counter: int, board: int, load: Load
) -> None:
    i = 0
    while not load.killed:
        i += 1
        bump = {"euid": counter, "type": "increase", "properties": {"visits": 1}}
        inc = Sent(f"inc-{n}-{i}", json.dumps(bump).encode())
        load.increases.append(inc)
        inc.acked = await post(client, server, inc)
        record = {"euid": board, "type": "set", "properties": {f"last_{n}": i}}
        load.last_set_sent[n] = i
        if await post(client, server, Sent(f"set-{n}-{i}", json.dumps(record).encode())):
            load.last_set_acked[n] = i
        load.acks += inc.acked
        if load.acks >= KILL_AFTER_ACKS and not load.killed:
            load.killed = True
            server.kill()


async def run_until_killed(server: Server, counter: int, board: int) -> Load:
    load = Load()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await asyncio.gather(
            *(writer(n, client, server, counter, board, load) for n in range(WRITERS))
        )
    return load


async def test_acknowledged_writes_survive_sigkill_and_retries_count_once(
    tmp_path: Path, storage_url: str
) -> None:
    with live_server(tmp_path, storage_url) as server:
        counter, board = server.register("counter"), server.register("board")
        load = await run_until_killed(server, counter, board)
        server.start()

        acked = sum(s.acked for s in load.increases)
        stored = server.props(counter)["visits"]
        assert isinstance(stored, int)
        assert acked <= stored <= len(load.increases)

        sets = server.props(board)
        for n, last_acked in load.last_set_acked.items():
            assert last_acked <= sets[f"last_{n}"] <= load.last_set_sent[n]  # type: ignore[operator]
        print(f"sent {len(load.increases)} increases, {acked} acknowledged, {stored} stored")

        # Retry every increase, answered or not, with its key: each counts exactly once.
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            answers = await asyncio.gather(*(post(client, server, s) for s in load.increases))
        assert all(answers)
        assert server.props(counter)["visits"] == len(load.increases)
