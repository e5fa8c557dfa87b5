"""Client-side bounds on every wait for PostgreSQL.

A server that is frozen (SIGSTOP, a VM paused, a partition behind a peer that still
acknowledges TCP) answers nothing, and nothing on the server ends the wait:
``statement_timeout`` is the frozen server's own timer, and ``tcp_user_timeout`` and TCP
keepalives only fire when the peer's kernel stops acknowledging, which a paused process's
kernel never does. So every wait of a pooled connection for the server is armed with a
deadline, and a :class:`Watchdog` thread shuts down the socket of a connection still
waiting past it: the blocked thread wakes with an error at once, and the connection is
broken, so the pool drops it. The deadline is the sooner of the connection's ``limit``
after the wait began and the ``deadline`` of the unit of work it serves.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen

log = logging.getLogger("userprops.storage.postgres")
RV = TypeVar("RV")
TICK = 0.05  # seconds: how late past its deadline a wait may be cut


class WatchedConnection(psycopg.Connection[Any]):
    """A connection whose waits for the server the :class:`Watchdog` bounds, once
    :meth:`Watchdog.adopt` has given it a limit."""

    watchdog: Watchdog | None = None
    limit: float | None = None  # seconds any one wait may take; None: unbounded
    deadline = math.inf  # and never past this (time.monotonic()); set per unit of work
    severed = False

    def wait(self, gen: PQGen[RV], *args: Any, **kwargs: Any) -> RV:
        watchdog, limit = self.watchdog, self.limit
        if watchdog is None or limit is None:
            return super().wait(gen, *args, **kwargs)
        with watchdog.armed(self, min(time.monotonic() + limit, self.deadline)):
            try:
                return super().wait(gen, *args, **kwargs)
            except psycopg.OperationalError as exc:
                if self.severed:
                    raise psycopg.OperationalError(
                        f"no answer from PostgreSQL in time (db_timeout {limit:g} s):"
                        " connection closed"
                    ) from exc
                raise


class Watchdog:
    """One thread per storage, looking every TICK for connections waiting past their
    deadline. Arming and disarming cost a lock and a dict update: nothing per wait
    reaches the thread."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._armed: dict[WatchedConnection, float] = {}
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="userprops-watchdog", daemon=True)
        self._thread.start()

    def adopt(self, conn: psycopg.Connection[Any]) -> None:
        """Bound the waits of ``conn`` (a pool's ``configure`` callback)."""
        if isinstance(conn, WatchedConnection):
            conn.watchdog = self
            conn.limit = self.limit

    @contextmanager
    def armed(self, conn: WatchedConnection, deadline: float) -> Iterator[None]:
        with self._lock:
            self._armed[conn] = deadline
        try:
            yield
        finally:
            # Under the lock: once this returns, the connection is never cut, so a
            # connection back in the pool (or serving another unit) is safe.
            with self._lock:
                self._armed.pop(conn, None)

    def _run(self) -> None:
        while not self._closing.wait(TICK):
            now = time.monotonic()
            with self._lock:
                late = [conn for conn, deadline in self._armed.items() if deadline <= now]
                for conn in late:
                    del self._armed[conn]
                    _sever(conn)

    def close(self) -> None:
        self._closing.set()
        self._thread.join()


def _sever(conn: WatchedConnection) -> None:
    """Shut the socket down under the thread waiting on it: its poll wakes, the read
    finds the end of the stream, and psycopg marks the connection broken."""
    conn.severed = True
    log.warning("no answer from PostgreSQL in time: closing a connection")
    try:
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):
        pass  # already closed


@contextmanager
def unbounded(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Lift the per-wait limit of ``conn`` (a migration may wait for another process's,
    or build an index, for longer than db_timeout)."""
    if not isinstance(conn, WatchedConnection):
        yield
        return
    limit, conn.limit = conn.limit, None
    try:
        yield
    finally:
        conn.limit = limit


@contextmanager
def deadline(conn: psycopg.Connection[Any], at: float) -> Iterator[None]:
    """No wait of ``conn`` runs past ``at`` (time.monotonic()) within this block."""
    if not isinstance(conn, WatchedConnection):
        yield
        return
    conn.deadline = at
    try:
        yield
    finally:
        conn.deadline = math.inf
