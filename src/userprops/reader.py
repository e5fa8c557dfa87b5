"""Batched reads of users: ``GET /v1/user/property`` without a thread hand-off each.

A :class:`~userprops.batcher.Batcher` thread takes every read waiting and answers them all
with one :meth:`~userprops.storage.base.Storage.read_users`: one statement, one snapshot,
and on PostgreSQL one round trip for the batch. The event loop never waits on the
database, and a read costs it a place in a deque instead of a thread-pool hand-off
(docs/performance.md: 51 → 35 µs of CPU per read when the hand-off is removed).
"""

from __future__ import annotations

from typing import Any

from userprops.batcher import Batcher
from userprops.storage.base import Storage, StoredValue, UserKey


class Reader(Batcher[UserKey]):
    name = "userprops-reader"

    def __init__(self, storage: Storage, *, batch_max: int = 512) -> None:
        super().__init__(batch_max=batch_max, timeout=storage.timeout)
        self.storage = storage

    async def read_user(self, project_id: int, euid: int) -> dict[str, StoredValue] | None:
        """What :meth:`Storage.read_user` gives, read in the next batch."""
        values: dict[str, StoredValue] | None = await self._submit((project_id, euid))
        return values

    def _results(self, keys: list[UserKey]) -> list[Any]:
        return list(self.storage.read_users(keys))
