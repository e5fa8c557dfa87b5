"""Retention: a background sweep deleting events, and changes of the history, older than
their project keeps, and webhook deliveries that ended longer ago than the server keeps
them (``webhook_retention``).

A project keeps every event unless ``userprops project set SLUG --event-retention-days N``
gives it a retention; then events whose ``itime`` is more than N days before now are
deleted. Likewise ``--history-retention-days N`` for changes, by the time they were
committed; a change an enabled webhook endpoint has not fanned out yet is kept. The
sweep deletes in small batches, each one writer job, so a write waits at most for one
small delete, never for the whole sweep.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from userprops import clock
from userprops.storage.base import Transaction
from userprops.writer import Writer

DAY_MS = 86_400_000
SWEEP_BATCH = 500
log = logging.getLogger("userprops.retention")


def _delete_events(project_id: int, cutoff: int, limit: int, tx: Transaction) -> int:
    return tx.delete_events_before(project_id, cutoff, limit)


def _delete_changes(project_id: int, cutoff: int, limit: int, tx: Transaction) -> int:
    return tx.delete_changes_before(project_id, cutoff, limit)


def _delete_deliveries(cutoff: int, limit: int, tx: Transaction) -> int:
    return tx.delete_deliveries_before(cutoff, limit)


def _event_retention(tx: Transaction) -> dict[int, int]:
    return tx.event_retention()


def _history_retention(tx: Transaction) -> dict[int, int]:
    return tx.history_retention()


Retention = Callable[[Transaction], dict[int, int]]
# What a sweep deletes: (what, each project's retention in days, delete a batch).
_KINDS: tuple[tuple[str, Retention, Callable[..., int]], ...] = (
    ("event", _event_retention, _delete_events),
    ("change", _history_retention, _delete_changes),
)


async def sweep_events(
    writer: Writer,
    now_ms: int,
    *,
    batch: int = SWEEP_BATCH,
    stop: threading.Event | None = None,
    delivery_retention: float | None = None,
) -> int:
    """Delete every event, and every change of the history, past its project's
    retention as of ``now_ms``, and the webhook deliveries that ended more than
    ``delivery_retention`` seconds ago (where given), ``batch`` per writer job; return
    how many were deleted. Stops early once ``stop`` is set."""
    total = 0
    if delivery_retention is not None:
        cutoff = now_ms - round(delivery_retention * 1000)
        job = functools.partial(_delete_deliveries, cutoff, batch)
        deleted = await _batches(writer, job, batch, stop)
        if deleted:
            log.info("retention sweep deleted %d webhook deliveries", deleted)
        total += deleted
    for what, retention, delete in _KINDS:

        def read(retention: Retention = retention) -> dict[int, int]:
            with writer.storage.read() as tx:
                return retention(tx)

        deleted_here = 0
        for project_id, days in (await asyncio.to_thread(read)).items():
            job = functools.partial(delete, project_id, now_ms - days * DAY_MS, batch)
            deleted_here += await _batches(writer, job, batch, stop)
        if deleted_here:
            log.info("retention sweep deleted %d %s(s)", deleted_here, what)
        total += deleted_here
    return total


async def _batches(
    writer: Writer,
    job: Callable[[Transaction], int],
    batch: int,
    stop: threading.Event | None,
) -> int:
    """Run ``job`` (deleting at most ``batch``) until it deletes fewer, or ``stop``."""
    deleted = 0
    while stop is None or not stop.is_set():
        gone = await writer.submit(job)
        deleted += gone
        if gone < batch:
            break
    return deleted


Sweep = Callable[[Writer, int, threading.Event], Coroutine[Any, Any, int]]


def retention_sweep(delivery_retention: float | None = None) -> Sweep:
    """:func:`sweep_events` as a :class:`Sweeper`'s sweep."""

    async def sweep(writer: Writer, now_ms: int, stop: threading.Event) -> int:
        return await sweep_events(writer, now_ms, stop=stop, delivery_retention=delivery_retention)

    return sweep


class Sweeper:
    """Runs ``sweep`` (by default :func:`sweep_events`; ``what`` names it in the log) every
    ``interval`` seconds in its own thread (with its own event loop), first ``first``
    seconds (by default one interval) after :meth:`start`; ``interval <= 0`` disables."""

    def __init__(
        self,
        writer: Writer,
        interval: float,
        *,
        sweep: Sweep | None = None,
        name: str = "userprops-sweeper",
        what: str = "retention sweep",
        first: float | None = None,
    ) -> None:
        self._writer = writer
        self._interval = interval
        self._sweep = retention_sweep() if sweep is None else sweep
        self._name = name
        self._what = what
        self._first = interval if first is None else first
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._interval <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the batch in progress, then stop; the writer must still be running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run_once(self) -> int:
        """One sweep as of now, in the calling thread (not one running an event loop);
        a failure is logged and retried at the next interval, never raised."""
        now_ms = clock.now_ms()
        try:
            return asyncio.run(self._sweep(self._writer, now_ms, self._stop))
        except Exception:
            log.exception("%s failed; retrying next interval", self._what)
            return 0

    def _run(self) -> None:
        wait = self._first
        while not self._stop.wait(wait):
            self.run_once()
            wait = self._interval
