"""Deadlines for reading request bodies, at the cost of two dict operations per request.

``asyncio.timeout`` schedules and cancels a timer for every request, which is a visible
share of the hot path. Every body read here has the same timeout, so deadlines expire in
the order they were set: one timer, set for the oldest deadline, is enough. When it fires
it cancels every task whose deadline has passed and re-arms itself for the next one.
"""

from __future__ import annotations

import asyncio


class BodyDeadlines:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._reading: dict[asyncio.Task[object], float] = {}  # oldest first
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, task: asyncio.Task[object], loop: asyncio.AbstractEventLoop) -> None:
        """``task`` starts reading; it is cancelled if still reading after the timeout."""
        deadline = loop.time() + self.timeout
        self._reading[task] = deadline
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire, loop)

    def finish(self, task: asyncio.Task[object]) -> bool:
        """``task`` stopped reading; True when that was because its deadline passed (the
        cancellation is then taken back, so the task can answer)."""
        self._reading.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()
            return True
        return False

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        while self._reading:
            task, deadline = next(iter(self._reading.items()))
            if deadline > now:
                self._timer = loop.call_at(deadline, self._expire, loop)
                return
            del self._reading[task]
            if not task.done():
                self._expired.add(task)
                task.cancel()
