"""What the PostgreSQL backend adds to the storage contract: choosing it by URL, and writers
in several processes (here: several storages, each with its own pool) on one database."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from click.testing import CliRunner

from userprops.cli import main
from userprops.errors import StorageUnavailable
from userprops.schema import AttrType, SchemaMode
from userprops.storage import Storage, StoredValue, Transaction, open_storage
from userprops.storage.postgres_transaction import PostgresTransaction

Job = Callable[[Transaction], int]


def _project(storage: Storage) -> int:
    with storage.transaction() as tx:
        return tx.create_project("race", SchemaMode.AUTO, "UTC").id


def test_a_postgresql_url_without_the_driver_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "userprops.storage.postgres", raising=False)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    result = CliRunner().invoke(main, ["migrate", "--database", "postgresql://localhost/x"])
    assert result.exit_code == 1
    assert (
        "scripts/install postgres" in result.output and "pip install '.[postgres]'" in result.output
    )


def test_a_register_that_loses_the_race_gets_the_winners_euid_and_leaves_no_user(
    two: tuple[Storage, Storage],
) -> None:
    first, second = two
    pid = _project(first)
    outcome: dict[str, int] = {}
    with first.transaction() as winner:
        assert winner.find_identity(pid, "user_id", "alice") is None
        winning = winner.bind_identity(pid, "user_id", "alice", winner.create_user(pid))

        losing = second.transaction()
        loser = losing.__enter__()
        # It does not see the uncommitted winner, so it creates a user of its own.
        assert loser.find_identity(pid, "user_id", "alice") is None
        created = loser.create_user(pid)

        def bind() -> None:  # waits for the winner's commit, or finds it committed
            outcome["bound"] = loser.bind_identity(pid, "user_id", "alice", created)
            losing.__exit__(None, None, None)

        racer = threading.Thread(target=bind)
        racer.start()
    racer.join()

    assert outcome["bound"] == winning
    with second.read() as tx:
        assert tx.user_project(created) is None
        assert tx.count_rows()["users"] == 1
        assert tx.find_identity(pid, "user_id", "alice") == winning


def _wait_until_a_session_waits_for_a_lock(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(1000):
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
    raise AssertionError("no session ever waited for a lock")


def test_a_contact_taken_concurrently_leaves_the_loser_unchanged(
    two: tuple[Storage, Storage], pg_url: str
) -> None:
    first, second = two
    pid = _project(first)
    with first.transaction() as tx:
        winner_euid, loser_euid = tx.create_user(pid), tx.create_user(pid)
        tx.bind_contact(pid, loser_euid, "email", "old@example.com")
    outcome: dict[str, int] = {}
    with first.transaction() as winner:
        assert winner.bind_contact(pid, winner_euid, "email", "x@example.com") == winner_euid

        def take() -> None:  # sees no holder; its upsert waits for the winner, then conflicts
            with second.transaction() as loser:
                outcome["holder"] = loser.bind_contact(pid, loser_euid, "email", "x@example.com")

        racer = threading.Thread(target=take)
        racer.start()
        _wait_until_a_session_waits_for_a_lock(pg_url)
    racer.join()

    assert outcome["holder"] == winner_euid
    with second.read() as tx:
        assert tx.get_contacts(pid, loser_euid) == {"email": "old@example.com"}
        assert tx.get_contacts(pid, winner_euid) == {"email": "x@example.com"}


def test_concurrent_definitions_of_one_attribute_agree_on_the_first_type(
    two: tuple[Storage, Storage],
) -> None:
    first, second = two
    pid = _project(first)
    seen: dict[str, AttrType] = {}
    with first.transaction() as tx:
        seen["first"] = tx.define_attribute(pid, "plan", AttrType.STRING)

        def define_later() -> None:
            with second.transaction() as other:
                seen["second"] = other.define_attribute(pid, "plan", AttrType.NUMBER)

        racer = threading.Thread(target=define_later)
        racer.start()
    racer.join()
    assert seen == {"first": AttrType.STRING, "second": AttrType.STRING}


def _counter_job(pid: int, euid: int, runs: list[int], gates: list[threading.Barrier]) -> Job:
    """A job that locks a user and adds one to its counter. The first time it runs, it
    then waits at the gate it is given, so that two batches can be made to cross."""

    def job(tx: Transaction) -> int:
        assert tx.lock_user(pid, euid)
        runs.append(euid)
        if gates:
            gates.pop().wait(timeout=10)
        before = tx.get_values(pid, euid, ["n"]).get("n")
        count = 1 + (int(before.text) if before else 0)
        tx.put_values(pid, euid, {"n": StoredValue(AttrType.NUMBER, str(count))})
        return count

    return job


def test_batches_that_deadlock_are_retried_and_apply_every_job_once(
    two: tuple[Storage, Storage],
) -> None:
    first, second = two
    pid = _project(first)
    with first.transaction() as tx:
        a, b = tx.create_user(pid), tx.create_user(pid)
    gate = threading.Barrier(2)
    runs: list[int] = []
    results: list[object] = []

    def batch(storage: Storage, one: int, other: int) -> None:
        jobs = [_counter_job(pid, one, runs, [gate]), _counter_job(pid, other, runs, [])]
        results.extend(storage.run_batch(jobs))

    threads = [
        threading.Thread(target=batch, args=(first, a, b)),
        threading.Thread(target=batch, args=(second, b, a)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(results) == [1, 1, 2, 2]  # type: ignore[type-var]
    with first.read() as tx:
        assert tx.get_values(pid, a)["n"].text == "2"
        assert tx.get_values(pid, b)["n"].text == "2"
    # Both took their first lock, then crossed: one was chosen as the deadlock victim,
    # rolled back, and ran both of its jobs again.
    assert len(runs) == 5


def test_after_a_restart_no_request_fails_because_a_pooled_connection_is_dead(
    pg_url: str,
) -> None:
    """However many connections the pool held: each unit of work that finds its
    connection dead (its first statement fails) drains the pool and runs again on a new
    connection, before anything of it was committed."""
    storage = open_storage(pg_url)
    storage.migrate()
    pid = _project(storage)
    with storage.transaction() as tx:
        euid = tx.create_user(pid)
    with ThreadPoolExecutor(4) as pool:  # several pooled connections, all used just now
        list(pool.map(lambda _: storage.read_users([(pid, euid)]), range(16)))
    for _ in range(2):
        _terminate_userprops_sessions(pg_url)
        storage.ping()
        assert storage.read_users([(pid, euid)])[0] is not None
        _terminate_userprops_sessions(pg_url)
        with storage.read() as tx:
            assert tx.has_user(pid, euid)
        _terminate_userprops_sessions(pg_url)
        with storage.transaction() as tx:
            tx.put_values(pid, euid, {"v": StoredValue(AttrType.STRING, "x")})
        _terminate_userprops_sessions(pg_url)
        assert storage.run_batch([_increment(pid, euid)]) == [None]
    with storage.read() as tx:
        assert tx.get_values(pid, euid)["n"].text == "2"
    storage.close()


def _terminate_userprops_sessions(pg_url: str) -> None:
    """End every session of userprops on the database, as a server restart does."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'userprops' AND datname = current_database()"
        )


def _increment(pid: int, euid: int) -> Callable[[Transaction], None]:
    def job(tx: Transaction) -> None:
        tx.lock_user(pid, euid)
        current = tx.get_values(pid, euid, ["n"]).get("n")
        n = 0 if current is None else int(current.text)
        tx.put_values(pid, euid, {"n": StoredValue(AttrType.NUMBER, str(n + 1))})

    return job


@pytest.mark.parametrize("sent", [False, True], ids=["before COMMIT", "after COMMIT"])
def test_a_connection_lost_at_commit_is_never_answered_0_nor_applied_twice(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, sent: bool
) -> None:
    """Lost before COMMIT went out, the batch runs again on a new connection and applies
    once; lost after it (the outcome unknown: it did commit here), the batch is answered
    StorageUnavailable, never run again, and applied exactly once."""
    storage = open_storage(pg_url)
    storage.migrate()
    pid = _project(storage)
    with storage.transaction() as tx:
        euid = tx.create_user(pid)
    commit = PostgresTransaction.commit
    calls = []

    def lose_the_connection(self: PostgresTransaction) -> None:
        calls.append(sent)
        if len(calls) == 1:
            if sent:
                commit(self)
            self._conn.close()
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        commit(self)

    monkeypatch.setattr(PostgresTransaction, "commit", lose_the_connection)
    if sent:
        with pytest.raises(StorageUnavailable):
            storage.run_batch([_increment(pid, euid)])
        assert len(calls) == 1  # not run again
    else:
        assert storage.run_batch([_increment(pid, euid)]) == [None]
        assert len(calls) == 2  # run again, on another connection
    with storage.read() as tx:
        assert tx.get_values(pid, euid)["n"].text == "1"
    storage.close()


def _writer(pid: int, euid: int, text: str, *, read_back: bool = False) -> Job:
    """A job that writes one value (a text with U+0000 fails on PostgreSQL), then counts
    the user's values if ``read_back``."""

    def job(tx: Transaction) -> int:
        tx.write_values({(pid, euid, "v"): StoredValue(AttrType.STRING, text)}, ())
        return len(tx.get_values(pid, euid)) if read_back else 1

    return job


@pytest.mark.parametrize("failing", [0, 1, 2])
def test_a_write_that_fails_is_its_own_jobs_error_wherever_it_is_in_the_batch(
    two: tuple[Storage, Storage], failing: int
) -> None:
    # The batch's writes are sent late (the last one with COMMIT): a failure still
    # belongs to the job that wrote, and the other jobs are kept.
    storage = two[0]
    pid = _project(storage)
    with storage.transaction() as tx:
        users = [tx.create_user(pid) for _ in range(3)]
    texts = ["bad\x00" if i == failing else f"ok{i}" for i in range(3)]
    results = storage.run_batch([_writer(pid, e, t) for e, t in zip(users, texts, strict=True)])

    assert isinstance(results[failing], psycopg.DataError)
    assert [r for i, r in enumerate(results) if i != failing] == [1, 1]
    with storage.read() as tx:
        found = [tx.get_values(pid, e).get("v") for e in users]
    kept = [None if i == failing else StoredValue(AttrType.STRING, t) for i, t in enumerate(texts)]
    assert found == kept


def test_a_job_reads_its_own_write_and_the_batch_sees_earlier_jobs_writes(
    two: tuple[Storage, Storage],
) -> None:
    storage = two[0]
    pid = _project(storage)
    with storage.transaction() as tx:
        euid = tx.create_user(pid)
    seen = storage.run_batch(
        [_writer(pid, euid, "a", read_back=True), lambda tx: tx.get_values(pid, euid)]
    )
    assert seen == [1, {"v": StoredValue(AttrType.STRING, "a")}]
    with storage.read() as tx:  # committed, though the last job wrote nothing
        assert tx.get_values(pid, euid) == {"v": StoredValue(AttrType.STRING, "a")}


def test_a_batch_that_writes_nothing_answers(two: tuple[Storage, Storage]) -> None:
    assert two[0].run_batch([lambda tx: 1, lambda tx: 2]) == [1, 2]
