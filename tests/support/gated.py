"""A storage wrapped to hold a batch until released, or to fail it as a broken disk or
server would: for tests of group commit."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from userprops.storage import Storage
from userprops.storage.base import Transaction
from userprops.writer import Group


class GatedStorage:
    """The real storage, except that once ``hold`` is set the next batch waits for
    ``release`` (so the next requests queue up into one batch), and a batch can be made to
    fail after its jobs have written. ``batch_sizes`` counts from ``hold``, in units (a
    group of property jobs is one); ``batch_jobs`` counts the requests' jobs."""

    def __init__(self, real: Storage) -> None:
        self.real = real
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batch_sizes: list[int] = []
        self.batch_jobs: list[int] = []
        self.fail_batch: int | None = None
        self.holding = False

    def hold(self) -> None:
        self.batch_sizes.clear()
        self.holding = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def run_batch(self, jobs: Sequence[Callable[[Transaction], Any]]) -> list[Any]:
        if not self.holding:
            return self.real.run_batch(jobs)
        self.batch_sizes.append(len(jobs))
        self.batch_jobs.append(sum(_members(job) for job in jobs))
        if len(self.batch_sizes) == 1:
            self.entered.set()
            self.release.wait()
        if self.fail_batch == len(self.batch_sizes):
            return self.real.run_batch([*jobs, self._disk_fails])[: len(jobs)]
        return self.real.run_batch(jobs)

    def _disk_fails(self, tx: Transaction) -> None:
        """What the backend's driver raises when the disk or the server fails."""
        if self.real.url.startswith("sqlite"):
            raise sqlite3.OperationalError("disk I/O error")
        import psycopg

        raise psycopg.OperationalError("server closed the connection unexpectedly")


def _members(unit: Callable[[Transaction], Any]) -> int:
    """How many requests' jobs a unit of a batch runs."""
    return len(unit.jobs) if isinstance(unit, Group) else 1
