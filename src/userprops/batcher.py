"""A thread that serves requests in batches: the machinery the writer and the reader share.

Handlers submit an item and await its answer. Items wait in a deque; the thread sleeps on a
bell (a queue of wake-ups) that only the first item after it took the waiting ones rings,
so a batch costs one wake-up however many requests it holds. The thread takes every item
waiting (up to ``batch_max``), gets one result or exception per item from
:meth:`Batcher._results`, and answers each on the event loop it came from, with one
``call_soon_threadsafe`` per loop and batch.

With a ``timeout`` (the storage's, see :attr:`Storage.timeout`), each item must be answered
within that many seconds of its submission: an item that waited longer is answered
:class:`StorageUnavailable` without being served (nothing of it is applied), and a batch is
served within the deadline of its oldest item (:func:`userprops.storage.base.within`), so
one batch held up by the database does not hold the requests queued behind it any longer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections import deque
from typing import Any, Generic, TypeVar

from userprops.errors import InternalError, StorageUnavailable, UserpropsError
from userprops.storage.base import within

I = TypeVar("I")  # noqa: E741 (the item a batch is made of)
log = logging.getLogger("userprops.batcher")

# An item, its answer, the loop that awaits it, and its deadline (time.monotonic()).
_Waiting = tuple[I, asyncio.Future[Any], asyncio.AbstractEventLoop, float]


class Batcher(Generic[I]):
    """Subclasses say how a batch of items is served (:meth:`_results`)."""

    name = "userprops-batcher"

    def __init__(self, *, batch_max: int = 512, timeout: float | None = None) -> None:
        self._batch_max = batch_max
        self._timeout = timeout
        self._waiting: deque[_Waiting[I]] = deque()
        self._bell: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._rung = False  # the bell rang and the thread has not taken the items yet
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.jobs = 0
        # The storage failed the last batch, and none has been served since (readiness).
        self.failing = False

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Serve every item already submitted, then stop the thread."""
        if self._thread is not None:
            self._stopping = True
            self._bell.put(None)
            self._thread.join()
            self._thread = None

    def waiting(self) -> int:
        """How many submitted items no batch has taken yet."""
        return len(self._waiting)

    async def _submit(self, item: I) -> Any:
        """Serve ``item`` in the next batch; its result, once the batch is done."""
        if self._thread is None:
            raise StorageUnavailable(f"the {self.name} thread is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        timeout = self._timeout
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        self._waiting.append((item, future, loop, deadline))
        if not self._rung:
            self._rung = True
            self._bell.put(None)
        return await future

    def _run(self) -> None:
        waiting = self._waiting
        while True:
            self._bell.get()
            # Taken before the items: an item submitted from here on rings again.
            self._rung = False
            while waiting:
                take = min(len(waiting), self._batch_max)
                self._serve([waiting.popleft() for _ in range(take)])
            if self._stopping:
                return

    def _serve(self, batch: list[_Waiting[I]]) -> None:
        if self._timeout is None:
            self._answer(batch, self._batch_results(batch))
            return
        now = time.monotonic()
        late = [waiting for waiting in batch if waiting[3] <= now]
        if late:
            batch = [waiting for waiting in batch if waiting[3] > now]
            expired = StorageUnavailable(f"no answer from the database in {self._timeout:g} s")
            self._answer(late, [expired] * len(late))
        if batch:
            with within(min(deadline for *_, deadline in batch)):
                self._answer(batch, self._batch_results(batch))

    def _batch_results(self, batch: list[_Waiting[I]]) -> list[Any]:
        try:
            results = self._results([item for item, *_ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
            self.failing = False
        except UserpropsError as exc:  # the storage failed: so does every item of the batch
            log.warning("%s: batch of %d failed: %s", self.name, len(batch), exc.detail)
            results = [exc] * len(batch)
            self.failing = isinstance(exc, StorageUnavailable)
        except Exception:  # never let the thread die: every later request would hang
            log.exception("batch of %d failed", len(batch))
            results = [InternalError()] * len(batch)
        self.batches += 1
        self.jobs += len(batch)
        return results

    def _answer(self, batch: list[_Waiting[I]], results: list[Any]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for (_, future, loop, _), result in zip(batch, results, strict=True):
            if isinstance(result, Exception) and not isinstance(result, UserpropsError):
                log.error("request failed", exc_info=result)
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

    def _results(self, items: list[I]) -> list[Any]:
        """One result (or exception) per item, in order; a :class:`UserpropsError` raised
        here (the storage failed) is the answer of every item of the batch."""
        raise NotImplementedError


def _resolve(answers: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in answers:
        if future.done():  # the request was cancelled (client went away)
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
