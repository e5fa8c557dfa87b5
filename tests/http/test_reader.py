"""Batched reads: the reads of ``GET /v1/user/property`` waiting while one batch is read
are answered together by one ``read_users``, each with its own answer, and a failed read
fails exactly its batch."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from tests.support.api import Api, api_over, queued_behind
from userprops.errors import StorageUnavailable
from userprops.storage import Storage
from userprops.storage.base import UserKey


class GatedReads:
    """The real storage, except that the first ``read_users`` after :meth:`hold` waits
    for ``release``, and a chosen call can fail as a database that went away does."""

    def __init__(self, real: Storage) -> None:
        self.real = real
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[list[UserKey]] = []
        self.holding = False
        self.fail_call: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def hold(self) -> None:
        self.calls.clear()
        self.holding = True

    def read_users(self, keys: Sequence[UserKey]) -> list[Any]:
        if self.holding:
            self.calls.append(list(keys))
            if len(self.calls) == 1:
                self.entered.set()
                self.release.wait()
            if self.fail_call == len(self.calls):
                raise StorageUnavailable("server closed the connection unexpectedly")
        return self.real.read_users(keys)


@pytest.fixture
async def gated(storage_url: str, storage: Storage) -> AsyncIterator[tuple[Api, GatedReads]]:
    gate = GatedReads(storage)
    async with api_over(storage_url, gate) as client:
        yield client, gate
        gate.release.set()


async def _batched(api: Api, gate: GatedReads, first: int, *rest: int) -> list[Any]:
    """Read ``first`` alone in a held batch, queue ``rest`` behind it, then let both go."""
    reads = [api.get("/v1/user/property", euid=euid) for euid in (first, *rest)]
    return await queued_behind(gate.entered, gate.release, api.app.reader, *reads)


async def test_reads_waiting_behind_a_batch_are_read_together_with_their_own_answers(
    gated: tuple[Api, GatedReads],
) -> None:
    api, gate = gated
    a, b, c = await api.register("a", "b", "c")
    await api.set(a, "set", {"plan": "gold"})
    await api.set(b, "increase", {"visits": 2})
    gate.hold()
    answers = await _batched(api, gate, c, a, 999_999, b, a)
    assert len(gate.calls) == 2
    assert [len(call) for call in gate.calls] == [1, 4]
    assert [r.json()["code"] for r in answers] == [0, 0, 40404, 0, 0]
    assert [r.json().get("data", {}).get("properties") for r in answers] == [
        {},
        {"plan": "gold"},
        None,
        {"visits": 2},
        {"plan": "gold"},
    ]


async def test_a_failed_read_fails_exactly_the_reads_of_its_batch(
    gated: tuple[Api, GatedReads],
) -> None:
    api, gate = gated
    a, b = await api.register("a", "b")
    await api.set(b, "set", {"plan": "gold"})
    gate.hold()
    gate.fail_call = 2
    answers = await _batched(api, gate, a, b, b)
    assert [(r.status_code, r.json()["code"]) for r in answers] == [
        (200, 0),
        (503, 50300),
        (503, 50300),
    ]
    assert await api.props(b) == {"plan": "gold"}
