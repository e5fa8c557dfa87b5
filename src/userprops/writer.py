"""Group commit: one writer thread per database.

Request handlers :meth:`Writer.submit` a job (a function of a
:class:`~userprops.storage.base.Transaction`). The writer takes every job waiting, up to
``batch_max``, runs them in one transaction (:meth:`Storage.run_batch`), commits once and
only then answers each job's future. A job's own exception is its own answer; a failure
of the transaction fails exactly the jobs of that batch with
:class:`~userprops.errors.StorageUnavailable`.

Consecutive jobs whose class has the same ``run_many(tx, jobs)`` (property writes:
:class:`userprops.engine.PropertyJob`) run as one unit through it, so their reads and
writes take a few statements per batch instead of a few per job; it returns one result or
exception per job, and if it raises, each of its jobs gets that exception.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from userprops import idempotency
from userprops.errors import InternalError, StorageUnavailable, UserpropsError
from userprops.storage.base import Storage, Transaction

T = TypeVar("T")
log = logging.getLogger("userprops.writer")

Job = Callable[[Transaction], Any]
_Item = tuple[Job, asyncio.Future[Any], asyncio.AbstractEventLoop]


class Writer:
    """Jobs wait in a deque; the writer thread sleeps on a bell (a queue of wake-ups)
    that only the first job after it took the waiting ones rings, so a batch costs one
    wake-up however many requests it holds."""

    def __init__(self, storage: Storage, *, batch_max: int = 512) -> None:
        self.storage = storage
        self._batch_max = batch_max
        self._waiting: deque[_Item] = deque()
        self._bell: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._rung = False  # the bell rang and the writer has not taken the jobs yet
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.jobs = 0

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="userprops-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish every job already submitted, then stop the thread."""
        if self._thread is not None:
            self._stopping = True
            self._bell.put(None)
            self._thread.join()
            self._thread = None

    def waiting(self) -> int:
        """How many submitted jobs no batch has taken yet."""
        return len(self._waiting)

    async def submit(self, job: Callable[[Transaction], T]) -> T:
        """Run ``job`` in the next batch; return its result once the batch is committed."""
        if self._thread is None:
            raise StorageUnavailable("the writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append((idempotency.wrap(job), future, loop))
        if not self._rung:
            self._rung = True
            self._bell.put(None)
        return await future

    def _run(self) -> None:
        waiting = self._waiting
        while True:
            self._bell.get()
            # Taken before the jobs: a job submitted from here on rings again.
            self._rung = False
            while waiting:
                take = min(len(waiting), self._batch_max)
                self._commit([waiting.popleft() for _ in range(take)])
            if self._stopping:
                return

    def _commit(self, batch: list[_Item]) -> None:
        try:
            results = self._results(batch)
        except Exception:  # never let the writer thread die: every later request would hang
            log.exception("batch of %d failed", len(batch))
            results = [InternalError()] * len(batch)
        self.batches += 1
        self.jobs += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for (_, future, loop), result in zip(batch, results, strict=True):
            if isinstance(result, Exception) and not isinstance(result, UserpropsError):
                log.error("job failed", exc_info=result)
                result = InternalError()
            answers = by_loop.get(loop)
            if answers is None:
                answers = by_loop[loop] = []
            answers.append((future, result))
        for loop, answers in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, answers)
            except RuntimeError:  # that loop is closed: nobody waits for these answers
                pass

    def _results(self, batch: list[_Item]) -> list[Any]:
        """One result (or exception) per job of the batch."""
        units = _grouped([job for job, _, _ in batch])
        try:
            unit_results = self.storage.run_batch(units)
        except UserpropsError as exc:
            log.warning("batch of %d failed: %s", len(batch), exc.detail)
            return [exc] * len(batch)
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


def _resolve(answers: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in answers:
        if future.done():  # the request was cancelled (client went away)
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
