"""``/readyz`` says when writes fail (docs/operations.md, docs/security.md).

On a full disk reads go on while every write answers 503; ``/readyz`` used to answer 200
all the same, so a load balancer kept sending writes to a server that could take none."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from tests.support.api import Api, api_over
from userprops import admin
from userprops.schema import SchemaMode
from userprops.storage import Storage
from userprops.storage.base import Transaction


class FullDisk:
    """The real storage, whose batches fail as on a full disk while ``full`` is set:
    the driver's own error, raised after the jobs wrote, as at the commit."""

    def __init__(self, real: Storage) -> None:
        self.real = real
        self.full = False
        self.batches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def run_batch(self, jobs: Sequence[Callable[[Transaction], Any]]) -> list[Any]:
        self.batches += 1
        if not self.full:
            return self.real.run_batch(jobs)
        return self.real.run_batch([*jobs, self._disk_is_full])[: len(jobs)]

    def _disk_is_full(self, tx: Transaction) -> None:
        if self.real.url.startswith("sqlite"):
            raise sqlite3.OperationalError("database or disk is full")
        import psycopg

        raise psycopg.errors.DiskFull("could not extend file: No space left on device")


@pytest.fixture
async def full_disk(storage_url: str, storage: Storage) -> AsyncIterator[tuple[Api, FullDisk]]:
    disk = FullDisk(storage)
    async with api_over(storage_url, disk) as client:
        yield client, disk


async def test_readyz_says_not_ready_while_writes_fail_and_ready_once_they_succeed(
    full_disk: tuple[Api, FullDisk],
) -> None:
    api, disk = full_disk
    assert api.app.writer is not None
    api.app.writer.probe_interval = 0.0  # a probe each time asked
    (euid,) = await api.register("ready")
    assert (await api.http.get("/readyz")).status_code == 200

    disk.full = True
    write = await api.set(euid, "set", {"plan": "gold"})
    assert (write.status_code, write.json()["code"]) == (503, 50300)
    assert (await api.get("/v1/user/property", euid=euid)).status_code == 200  # reads go on
    ready = await api.http.get("/readyz")
    assert (ready.status_code, ready.json()["code"]) == (503, 50300)
    assert "writes" in ready.json()["message"]
    assert (await api.http.get("/readyz")).status_code == 503  # it probes again, and fails

    disk.full = False  # room again: the probe write succeeds, with no request needed
    assert (await api.http.get("/readyz")).status_code == 200
    modes = [p.schema_mode for p in admin.list_projects(disk.real)]
    assert modes == [SchemaMode.AUTO]  # the probe changed nothing anyone can see
    assert (await api.set(euid, "set", {"plan": "gold"})).json()["code"] == 0


async def test_asking_often_while_writes_fail_makes_few_probe_writes(
    full_disk: tuple[Api, FullDisk],
) -> None:
    """/readyz needs no credentials: asking it in a loop must not become a stream of
    writes to a failing disk. Callers share a probe; one is made at most every
    ``probe_interval`` seconds (an hour here, so this holds on any machine)."""
    api, disk = full_disk
    assert api.app.writer is not None
    api.app.writer.probe_interval = 3600.0
    (euid,) = await api.register("often")
    disk.full = True
    assert (await api.set(euid, "set", {"plan": "gold"})).status_code == 503
    before = disk.batches
    answers = await asyncio.gather(*(api.http.get("/readyz") for _ in range(50)))
    answers += [await api.http.get("/readyz") for _ in range(50)]
    assert {a.status_code for a in answers} == {503}
    assert disk.batches - before == 1
