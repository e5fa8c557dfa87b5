"""The PostgreSQL backend, for several API processes on one database.

psycopg 3 (sync) with a :class:`psycopg_pool.ConnectionPool`: the group-commit writer thread
and the CLI are synchronous, and docs/backends.md has the measurement behind the choice.
Every connection runs with ``statement_timeout`` and ``connect_timeout`` from the
``timeout`` setting, TCP keepalives and ``tcp_user_timeout``, and every wait of a pooled
connection for the server is bounded on the client side too (:mod:`.postgres_watchdog`),
so a dead, unreachable or frozen server costs a request at most about that long, answered
503; the pool reconnects by itself when the server returns, trying again at least every
second or two (see ``reconnect_timeout`` below), so a promoted standby named in a
multi-host URL is found quickly.

Concurrency between processes is left to the server: ``lock_user`` takes the user's row
``FOR UPDATE``; uniqueness (identities, attributes) is ``INSERT ... ON CONFLICT DO
NOTHING`` followed by a read of the winner. A batch that hits a deadlock or a serialization
failure is rolled back and run again, a bounded number of times; so is a batch in which a
job without a savepoint failed (see :meth:`PostgresStorage.run_batch`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from userprops.clock import now_text
from userprops.errors import StorageUnavailable
from userprops.storage.base import (
    JobResult,
    Storage,
    StoredValue,
    Transaction,
    UserKey,
    current_deadline,
    users_from_rows,
)
from userprops.storage.postgres_transaction import (
    CHANGES_CHANNEL,
    READ_USERS,
    PostgresTransaction,
    json_text,
)
from userprops.storage.postgres_watchdog import Watchdog, WatchedConnection, deadline, unbounded

log = logging.getLogger("userprops.storage.postgres")
T = TypeVar("T")

BATCH_ATTEMPTS = 5
GUARDED_RERUNS = 3
# Deadlock and serialization failure: the transaction was rolled back and may be retried.
RETRYABLE = frozenset({"40P01", "40001"})
MIGRATION_LOCK = 0x75736572_70726F70  # "userprop": one migrator at a time per database
RECONNECTS = 2  # new connections tried after a dead one, per unit of work
LISTEN_CHECK = 1.0  # seconds: how often the change listener looks whether to stop
# Seconds a wait may outlast db_timeout outside a unit with a deadline, so that the
# server's statement_timeout, which answers cleanly, fires first on a live server.
WAIT_SLACK = 0.5


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.Error) and exc.sqlstate in RETRYABLE


def _fatal(exc: BaseException) -> bool:
    """Failures of the server or the connection, as opposed to one statement's error."""
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | PoolTimeout)


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
        raise StorageUnavailable(f"storage unavailable: {exc}") from exc


def _batch_failure(exc: Exception) -> None:
    """Raise what fails a job's whole batch: :class:`_Retry` for a deadlock or a
    serialization failure, ``exc`` itself for a failure of the server or the connection.
    Return for an error of the job alone."""
    if _retryable(exc):
        raise _Retry() from exc
    if _fatal(exc):
        raise exc


def _rollback(conn: psycopg.Connection[Any]) -> None:
    """End the transaction of a failed batch, if one is open. A broken connection is left
    as it is: the pool drops it."""
    if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        with suppress(psycopg.Error):
            conn.execute("ROLLBACK")


class _Retry(Exception):
    """A batch hit a deadlock or serialization failure and was rolled back."""


class _Reconnect(Exception):
    """A unit of work found its connection dead before anything of it could have been
    committed (COMMIT was not sent): safe to run again on another connection."""


def _dead(exc: BaseException, conn: psycopg.Connection[Any]) -> bool:
    """Whether ``exc`` is the loss of ``conn`` (the server restarted, went away, or ended
    the session), as opposed to an error of the statement or the server being slow."""
    return _fatal(exc) and not isinstance(exc, PoolTimeout) and (conn.broken or conn.closed)


class _Unguarded(Exception):
    """A job that ran without a savepoint failed; the batch was rolled back."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


class PostgresStorage(Storage):
    """``timeout`` (seconds) bounds connecting, waiting for a pooled connection and every
    statement; ``pool_size`` is the most connections this process opens."""

    timeout: float

    def __init__(self, url: str, *, timeout: float = 5.0, pool_size: int = 10) -> None:
        self.url = url
        self.timeout = timeout
        millis = max(1, round(timeout * 1000))
        self._watchdog = Watchdog(timeout + WAIT_SLACK)
        self._pool = ConnectionPool(
            url,
            connection_class=WatchedConnection,
            configure=self._watchdog.adopt,
            kwargs={
                **self._connect_kwargs(),
                "application_name": "userprops",
                "options": f"-c statement_timeout={millis} -c synchronous_commit=on",
            },
            min_size=1,
            max_size=max(1, pool_size),
            timeout=timeout,
            # A connection attempt that fails is tried again after 1 s, then after twice
            # as long each time, until reconnect_timeout: then the pool gives that attempt
            # up, and the next request waiting for a connection starts a new one at once.
            # Kept short, so that after a fail-over the pool never sleeps through the
            # promotion (a 60 s window had it wait up to 32 s between attempts).
            reconnect_timeout=timeout,
            name="userprops",
            open=False,
        )
        self._pool.open(wait=False)
        # Connections are not checked before use (a round trip each): the first statement
        # of a unit of work is its check, and a dead connection is replaced then. Each
        # connection remembers the pool generation it was handed out in; the first one
        # found dead in a generation drains the pool (see _retire).
        self._generation = 0
        self._handed: weakref.WeakKeyDictionary[psycopg.Connection[Any], int] = (
            weakref.WeakKeyDictionary()
        )
        self._retiring = threading.Lock()
        self._closing = threading.Event()
        self._listeners: list[threading.Thread] = []

    def _connect_kwargs(self) -> dict[str, Any]:
        """Bounds on connecting and on a silent peer (used for pooled connections and
        the change listener's): keepalives find a dead peer of an idle connection, and
        tcp_user_timeout one that stops acknowledging what was sent."""
        return {
            "autocommit": True,
            "connect_timeout": max(2, round(self.timeout)),
            "tcp_user_timeout": max(1, round(self.timeout * 1000)),
            "keepalives": 1,
            "keepalives_idle": max(1, round(self.timeout)),
            "keepalives_interval": 1,
            "keepalives_count": 3,
        }

    def _getconn(self, deadline: float) -> WatchedConnection:
        """A pooled connection, waiting at most until ``deadline`` (monotonic)."""
        with _translated():
            conn = self._pool.getconn(timeout=max(0.001, deadline - time.monotonic()))
        self._handed[conn] = self._generation
        return conn

    def _retire(self, conn: WatchedConnection) -> None:
        """``conn`` was found dead: the server restarted or went away, so every idle
        connection of its generation is as dead. Drain the pool (close the idle ones, open
        new ones) once per generation, so connections opened since are kept."""
        with self._retiring:
            if self._handed.get(conn) == self._generation:
                self._generation += 1
                self._pool.drain()

    def _retrying(self, unit: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``unit`` on a pooled connection. When it raises :class:`_Reconnect` (its
        connection was dead and nothing of it committed), the pool is drained and ``unit``
        runs again on a new connection, up to RECONNECTS times and within ``timeout``:
        after a server restart no request fails because the pool held connections to the
        old server, however many it held. No wait for the server runs past ``timeout``
        from now, nor past the deadline of :func:`userprops.storage.base.within`."""
        until = min(time.monotonic() + self.timeout, current_deadline())
        for attempt in range(RECONNECTS + 1):
            conn = self._getconn(until)
            try:
                with _translated(), deadline(conn, until):
                    return unit(conn)
            except _Reconnect as dead:
                self._retire(conn)
                if attempt == RECONNECTS or time.monotonic() >= until:
                    raise StorageUnavailable(f"storage unavailable: {dead.__cause__}") from dead
                log.info("a pooled connection was dead (%s); on a new one", dead.__cause__)
            finally:
                self._pool.putconn(conn)
        raise AssertionError("unreachable")

    @contextmanager
    def _begun(self, begin: str) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection on which ``begin`` (the transaction's first statement)
        succeeded, so it is alive: a dead one fails that statement, before anything is
        done, and is replaced (see :meth:`_retrying`)."""

        def checkout(conn: psycopg.Connection[Any]) -> None:
            try:
                conn.execute(begin)
            except Exception as exc:
                if _dead(exc, conn):
                    raise _Reconnect() from exc
                raise

        deadline = time.monotonic() + self.timeout
        for attempt in range(RECONNECTS + 1):
            conn = self._getconn(deadline)
            try:
                with _translated():
                    checkout(conn)
                break
            except _Reconnect as dead:
                self._pool.putconn(conn)
                self._retire(conn)
                if attempt == RECONNECTS or time.monotonic() >= deadline:
                    raise StorageUnavailable(f"storage unavailable: {dead.__cause__}") from dead
            except BaseException:
                self._pool.putconn(conn)
                raise
        try:
            with _translated():
                yield conn
        finally:
            self._pool.putconn(conn)

    def migrate(self, *, dry_run: bool = False) -> list[str]:
        from userprops.storage import migrations

        with self._committed() as conn, unbounded(conn):
            # Several servers may start at once: one migrates, the others wait and see.
            conn.execute("SET LOCAL statement_timeout = 0")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            pending = [m for m in migrations("postgres") if m.version not in done]
            for m in [] if dry_run else pending:
                conn.execute(m.sql)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                    (m.version, m.name, now_text()),
                )
        return [f"{m.version:04d}_{m.name}" for m in pending]

    @contextmanager
    def _committed(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection in a transaction, committed on normal exit, rolled back on error."""
        with self._begun("BEGIN") as conn:
            try:
                yield conn
            except BaseException:
                _rollback(conn)
                raise
            conn.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._committed() as conn:
            yield PostgresTransaction(conn)

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        with self._begun("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY") as conn:
            try:
                yield PostgresTransaction(conn)
            finally:
                _rollback(conn)

    def read_users(self, keys: Sequence[UserKey]) -> list[dict[str, StoredValue] | None]:
        if not keys:
            return []

        # One statement on an autocommit connection: one snapshot, one round trip.
        def read(conn: psycopg.Connection[Any]) -> list[Any]:
            try:
                return conn.execute(READ_USERS, (json_text(keys),)).fetchall()
            except Exception as exc:
                if _dead(exc, conn):  # a read: always safe to run again
                    raise _Reconnect() from exc
                raise

        return users_from_rows(len(keys), self._retrying(read))

    def run_batch(self, jobs: Sequence[Callable[[Transaction], Any]]) -> list[JobResult]:
        """Jobs run without savepoints until one fails: a savepoint costs a round trip and,
        past 64 writing ones in a transaction, slows every snapshot on the server
        (subtransaction cache overflow). A failing job has the batch rolled back and run
        again with a savepoint around that job (around all jobs after a few such reruns).
        """
        return self._retrying(lambda conn: self._run_batch(conn, jobs))

    def _run_batch(
        self, conn: psycopg.Connection[Any], jobs: Sequence[Callable[[Transaction], Any]]
    ) -> list[JobResult]:
        guarded: frozenset[int] = frozenset()
        reruns = conflicts = 0
        while True:
            try:
                return self._attempt(conn, jobs, guarded)
            except _Unguarded as failed:
                if len(jobs) == 1:  # nothing else to keep: the rollback was enough
                    return [failed.error]
                reruns += 1
                everyone = frozenset(range(len(jobs)))
                guarded = everyone if reruns >= GUARDED_RERUNS else guarded | {failed.index}
            except _Retry:
                conflicts += 1
                if conflicts >= BATCH_ATTEMPTS:
                    raise StorageUnavailable(
                        f"batch still conflicting after {BATCH_ATTEMPTS} attempts"
                    ) from None
                log.info("batch of %d rolled back (attempt %d), retrying", len(jobs), conflicts)
                time.sleep(random.uniform(0, 0.01 * conflicts))  # noqa: S311 (jitter)

    def _attempt(
        self,
        conn: psycopg.Connection[Any],
        jobs: Sequence[Callable[[Transaction], Any]],
        guarded: frozenset[int],
    ) -> list[JobResult]:
        if guarded:
            return self._attempt_guarded(conn, jobs, guarded)
        # The common case: no savepoint, and BEGIN and COMMIT sent with the first and the
        # last statements of the batch (PostgresTransaction's batch mode).
        tx = PostgresTransaction(conn, batch=True)
        results: list[JobResult] = []
        last = len(jobs) - 1
        try:
            for index, job in enumerate(jobs):
                try:
                    results.append(job(tx))
                    if index < last:
                        tx.end_job()
                    else:
                        tx.commit()  # sends the last job's write, which fails as its own
                except Exception as exc:
                    _batch_failure(exc)
                    raise _Unguarded(index, exc) from exc
        except BaseException as exc:
            _rollback(conn)
            if _dead(exc, conn) and not tx.commit_sent:
                raise _Reconnect() from exc
            raise
        return results

    def _attempt_guarded(
        self,
        conn: psycopg.Connection[Any],
        jobs: Sequence[Callable[[Transaction], Any]],
        guarded: frozenset[int],
    ) -> list[JobResult]:
        """A rerun after a job failed: a savepoint around each job of ``guarded``."""
        results: list[JobResult] = []
        committing = False
        try:
            with conn.transaction():
                tx = PostgresTransaction(conn)
                for index, job in enumerate(jobs):
                    guard = index in guarded
                    if guard:
                        conn.execute("SAVEPOINT job")
                    try:
                        results.append(job(tx))
                    except Exception as exc:
                        _batch_failure(exc)
                        if not guard:
                            raise _Unguarded(index, exc) from exc
                        conn.execute("ROLLBACK TO SAVEPOINT job")
                        results.append(exc)
                    if guard:
                        conn.execute("RELEASE SAVEPOINT job")
                committing = True
        except psycopg.Error as exc:
            if not committing and _dead(exc, conn):
                raise _Reconnect() from exc
            if _retryable(exc):  # the commit itself
                raise _Retry() from exc
            raise
        return results

    def ping(self) -> None:
        def ping(conn: psycopg.Connection[Any]) -> None:
            try:
                conn.execute("SELECT 1").fetchone()
            except Exception as exc:
                if _dead(exc, conn):
                    raise _Reconnect() from exc
                raise

        self._retrying(ping)

    def watch_changes(self, callback: Callable[[int], None]) -> None:
        """LISTEN on a connection of its own, outside the pool, in a thread; after a
        lost connection, listen again (a commit meanwhile is caught by the feed's own
        check, see :class:`userprops.history.Feed`)."""
        thread = threading.Thread(
            target=self._listen, args=(callback,), name="userprops-listen", daemon=True
        )
        thread.start()
        self._listeners.append(thread)

    def _listen(self, callback: Callable[[int], None]) -> None:
        while not self._closing.is_set():
            try:
                with psycopg.connect(self.url, **self._connect_kwargs()) as conn:
                    conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                    while not self._closing.is_set():
                        for notice in conn.notifies(timeout=LISTEN_CHECK):
                            callback(int(notice.payload))
            except (psycopg.Error, ValueError):
                log.info("change listener lost its connection; listening again")
                self._closing.wait(LISTEN_CHECK)

    def close(self) -> None:
        self._closing.set()
        for thread in self._listeners:
            thread.join(timeout=2 * LISTEN_CHECK)
        self._pool.close()
        self._watchdog.close()
