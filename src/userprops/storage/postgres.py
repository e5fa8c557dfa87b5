"""The PostgreSQL backend, for several API processes on one database.

psycopg 3 (sync) with a :class:`psycopg_pool.ConnectionPool`: the group-commit writer thread
and the CLI are synchronous, and docs/backends.md has the measurement behind the choice.
Every connection runs with ``statement_timeout`` and ``connect_timeout`` from the
``timeout`` setting, so a dead or unreachable server costs a request at most about that
long, answered 503; the pool reconnects by itself when the server returns.

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
from typing import Any

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
    users_from_rows,
)
from userprops.storage.postgres_transaction import (
    CHANGES_CHANNEL,
    READ_USERS,
    PostgresTransaction,
    json_text,
)

log = logging.getLogger("userprops.storage.postgres")

BATCH_ATTEMPTS = 5
GUARDED_RERUNS = 3
# Deadlock and serialization failure: the transaction was rolled back and may be retried.
RETRYABLE = frozenset({"40P01", "40001"})
MIGRATION_LOCK = 0x75736572_70726F70  # "userprop": one migrator at a time per database
IDLE_CHECK = 1.0  # seconds: a pooled connection idle longer is checked before use
LISTEN_CHECK = 1.0  # seconds: how often the change listener looks whether to stop


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


class _Unguarded(Exception):
    """A job that ran without a savepoint failed; the batch was rolled back."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


class PostgresStorage(Storage):
    """``timeout`` (seconds) bounds connecting, waiting for a pooled connection and every
    statement; ``pool_size`` is the most connections this process opens."""

    def __init__(self, url: str, *, timeout: float = 5.0, pool_size: int = 10) -> None:
        self.url = url
        self.timeout = timeout
        self._returned: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        millis = max(1, round(timeout * 1000))
        self._pool = ConnectionPool(
            url,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(2, round(timeout)),
                "tcp_user_timeout": millis,
                "application_name": "userprops",
                "options": f"-c statement_timeout={millis} -c synchronous_commit=on",
            },
            min_size=1,
            max_size=max(1, pool_size),
            check=self._check_idle,
            timeout=timeout,
            reconnect_timeout=max(timeout, 60.0),
            name="userprops",
            open=False,
        )
        self._pool.open(wait=False)
        self._closing = threading.Event()
        self._listeners: list[threading.Thread] = []

    def _check_idle(self, conn: psycopg.Connection[Any]) -> None:
        """The pool's check of a connection it hands out. The check is a round trip, so
        only a connection idle for more than IDLE_CHECK seconds is checked (the server may
        have restarted meanwhile): under load, one for every batch and read cost about as
        much as the batch's own statements. A connection that broke since its last use
        fails its first statement, answered 503, and the pool then drops it."""
        if time.monotonic() - self._returned.get(conn, 0.0) > IDLE_CHECK:
            ConnectionPool.check_connection(conn)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with _translated(), self._pool.connection() as conn:
            try:
                yield conn
            finally:
                self._returned[conn] = time.monotonic()

    def migrate(self, *, dry_run: bool = False) -> list[str]:
        from userprops.storage import migrations

        with self._connection() as conn, conn.transaction():
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
    def transaction(self) -> Iterator[Transaction]:
        with self._connection() as conn, conn.transaction():
            yield PostgresTransaction(conn)

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        with self._connection() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try:
                yield PostgresTransaction(conn)
            finally:
                conn.execute("ROLLBACK")

    def read_users(self, keys: Sequence[UserKey]) -> list[dict[str, StoredValue] | None]:
        if not keys:
            return []
        # One statement on an autocommit connection: one snapshot, one round trip.
        with self._connection() as conn:
            rows = conn.execute(READ_USERS, (json_text(keys),)).fetchall()
        return users_from_rows(len(keys), rows)

    def run_batch(self, jobs: Sequence[Callable[[Transaction], Any]]) -> list[JobResult]:
        """Jobs run without savepoints until one fails: a savepoint costs a round trip and,
        past 64 writing ones in a transaction, slows every snapshot on the server
        (subtransaction cache overflow). A failing job has the batch rolled back and run
        again with a savepoint around that job (around all jobs after a few such reruns).
        """
        guarded: frozenset[int] = frozenset()
        reruns = conflicts = 0
        with self._connection() as conn:
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
        except BaseException:
            _rollback(conn)
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
        except psycopg.Error as exc:  # the commit itself
            if _retryable(exc):
                raise _Retry() from exc
            raise
        return results

    def ping(self) -> None:
        with self._connection() as conn:
            conn.execute("SELECT 1").fetchone()

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
                with psycopg.connect(
                    self.url, autocommit=True, connect_timeout=max(2, round(self.timeout))
                ) as conn:
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
