"""Group commit: one writer thread per database (a :class:`~userprops.batcher.Batcher`).

Request handlers :meth:`Writer.submit` a job (a function of a
:class:`~userprops.storage.base.Transaction`). The writer takes every job waiting, up to
``batch_max``, runs them in one transaction (:meth:`Storage.run_batch`), commits once and
only then answers each job's future. A job's own exception is its own answer; a failure
of the transaction fails exactly the jobs of that batch with
:class:`~userprops.errors.StorageUnavailable`.

Consecutive jobs whose class has the same ``run_many(tx, jobs)`` (property writes:
:class:`userprops.properties.PropertyJob`) run as one unit through it, so their reads and
writes take a few statements per batch instead of a few per job; it returns one result or
exception per job, and if it raises, each of its jobs gets that exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from userprops import idempotency
from userprops.batcher import Batcher
from userprops.schema import SchemaMode
from userprops.storage.base import Storage, Transaction

T = TypeVar("T")

Job = Callable[[Transaction], Any]


class Writer(Batcher[Job]):
    """The group-commit writer of one database (see the module's docstring)."""

    name = "userprops-writer"
    probe_interval = 1.0

    def __init__(self, storage: Storage, *, batch_max: int = 512) -> None:
        super().__init__(batch_max=batch_max, timeout=storage.timeout)
        self.storage = storage
        self._probing: asyncio.Future[None] | None = None
        self._probed_at = 0.0

    async def submit(self, job: Callable[[Transaction], T]) -> T:
        """Run ``job`` in the next batch; return its result once the batch is committed."""
        result: T = await self._submit(idempotency.wrap(job))
        return result

    async def probe(self) -> None:
        """Make a :func:`probe` write; raise what it raised. Callers share one probe, and
        one is made at most every ``probe_interval`` seconds (in between, the last one's
        outcome is the answer), so asking often (``/readyz`` needs no credentials) cannot
        turn into a stream of writes."""
        loop = asyncio.get_running_loop()
        last = self._probing
        if last is None or (last.done() and loop.time() - self._probed_at >= self.probe_interval):
            self._probed_at = loop.time()
            last = self._probing = asyncio.ensure_future(self.submit(probe))
            last.add_done_callback(_retrieved)
        await asyncio.shield(last)

    def _results(self, jobs: list[Job]) -> list[Any]:
        units = _grouped(jobs)
        unit_results = self.storage.run_batch(units)
        if len(unit_results) != len(units):
            raise RuntimeError(f"storage gave {len(unit_results)} results for {len(units)} jobs")
        results: list[Any] = []
        for unit, result in zip(units, unit_results, strict=True):
            if not isinstance(unit, Group):
                results.append(result)
            elif isinstance(result, list) and len(result) == len(unit.jobs):
                results.extend(result)
            else:  # the group failed as a whole: each of its jobs has that answer
                results.extend([result] * len(unit.jobs))
        return results


def probe(tx: Transaction) -> None:
    """A write that changes nothing in the end, to learn whether writes succeed again after
    the storage failed a batch (a full disk fails writes while reads go on): a project's
    schema mode changed and changed back in one transaction, so nobody sees it, while the
    row is written all the same (SQLite writes nothing for an update to the same value)."""
    projects = tx.list_projects()
    if projects:
        first = projects[0]
        other = SchemaMode.STRICT if first.schema_mode is SchemaMode.AUTO else SchemaMode.AUTO
        tx.update_project(first.id, schema_mode=other, timezone=None)
        tx.update_project(first.id, schema_mode=first.schema_mode, timezone=None)


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # a probe nobody awaits any more fails quietly


@dataclass(frozen=True)
class Group:
    """Consecutive jobs of one kind, run as one unit of a batch through their class's
    ``run_many(tx, jobs)``, which returns one result or exception per job."""

    jobs: list[Job]
    run_many: Callable[[Transaction, list[Job]], list[Any]]

    def __call__(self, tx: Transaction) -> list[Any]:
        return self.run_many(tx, self.jobs)


def _grouped(jobs: list[Job]) -> list[Job]:
    """The units a batch runs as: each job alone, except consecutive jobs whose class has
    the same ``run_many``, which become one :class:`Group`. Consecutive only, so the batch
    keeps the order of submission."""
    units: list[Job] = []
    for job in jobs:
        run_many = getattr(type(job), "run_many", None)
        last = units[-1] if units else None
        if run_many is None:
            units.append(job)
        elif isinstance(last, Group) and last.run_many is run_many:
            last.jobs.append(job)
        else:
            units.append(Group([job], run_many))
    return units
