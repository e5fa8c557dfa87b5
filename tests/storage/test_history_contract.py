"""The storage contract of the history and the change feed, run on every backend."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from userprops.schema import AttrType, SchemaMode
from userprops.storage import Storage, Transaction, open_storage
from userprops.storage.base import NewChange, StoredValue


@pytest.fixture
def pid(storage: Storage) -> int:
    with storage.transaction() as tx:
        return tx.create_project("p", SchemaMode.AUTO, "UTC").id


@pytest.fixture
def tx(storage: Storage, pid: int) -> Iterator[Transaction]:
    with storage.transaction() as transaction:
        yield transaction


def change(pid: int, euid: int, name: str, new: str | None, old: str | None = None) -> NewChange:
    return NewChange(pid, euid, name, "set", AttrType.STRING, old, new, "test")


def test_changes_are_numbered_per_project_in_the_order_recorded(storage: Storage) -> None:
    with storage.transaction() as tx:
        p, q = (tx.create_project(s, SchemaMode.AUTO, "UTC").id for s in ("p", "q"))
        assert (tx.last_seq(p), tx.last_seq(q)) == (0, 0)
        tx.record_changes([change(p, 1, "a", "1"), change(q, 9, "a", "x"), change(p, 1, "b", "2")])
        tx.record_changes([change(p, 2, "a", "3")])
    with storage.read() as tx:
        assert [(c.seq, c.euid, c.new) for c in tx.list_changes(p, 0, 10)] == [
            (1, 1, "1"),
            (2, 1, "2"),
            (3, 2, "3"),
        ]
        assert [(c.seq, c.new) for c in tx.list_changes(q, 0, 10)] == [(1, "x")]
        assert (tx.last_seq(p), tx.last_seq(q)) == (3, 1)
        assert [c.seq for c in tx.list_changes(p, 1, 1)] == [2]
        assert tx.list_changes(p, 3, 10) == []


def test_a_rolled_back_transaction_hands_out_no_seq(storage: Storage, pid: int) -> None:
    with pytest.raises(RuntimeError), storage.transaction() as tx:
        tx.record_changes([change(pid, 1, "a", "1")])
        raise RuntimeError("rolled back")
    with storage.transaction() as tx:
        tx.record_changes([change(pid, 1, "a", "2")])
    with storage.read() as tx:
        assert [(c.seq, c.new) for c in tx.list_changes(pid, 0, 10)] == [(1, "2")]


def test_changes_recorded_by_a_batch_job_are_numbered_at_its_commit(
    storage: Storage, pid: int
) -> None:
    def job(tx: Transaction) -> None:
        tx.put_values(pid, 1, {"a": StoredValue(AttrType.STRING, "v")})
        tx.record_changes([change(pid, 1, "a", "v")])

    def failing(tx: Transaction) -> None:
        tx.record_changes([change(pid, 1, "b", "never")])
        raise ValueError("this job fails alone")

    with storage.transaction() as tx:
        user = tx.create_user(pid)
    assert user == 1
    results = storage.run_batch([job, failing, job])
    assert isinstance(results[1], ValueError)
    with storage.read() as tx:
        assert [(c.seq, c.property) for c in tx.list_changes(pid, 0, 10)] == [(1, "a"), (2, "a")]


def test_history_lists_a_users_changes_newest_first_with_filters(tx: Transaction, pid: int) -> None:
    tx.record_changes(
        [change(pid, 1, n, str(i)) for i, n in enumerate("abab")] + [change(pid, 2, "a", "x")]
    )
    every = tx.list_history(pid, 1, prop=None, since=None, until=None, before=None, limit=10)
    assert [(c.seq, c.property) for c in every] == [(4, "b"), (3, "a"), (2, "b"), (1, "a")]
    only_a = tx.list_history(pid, 1, prop="a", since=None, until=None, before=None, limit=10)
    assert [c.seq for c in only_a] == [3, 1]
    page = tx.list_history(pid, 1, prop=None, since=None, until=None, before=3, limit=1)
    assert [c.seq for c in page] == [2]
    at = every[0].at
    assert tx.list_history(pid, 1, prop=None, since=at + 1, until=None, before=None, limit=9) == []
    assert tx.list_history(pid, 1, prop=None, since=None, until=at, before=None, limit=9) == []
    assert (
        tx.list_history(pid + 1, 1, prop=None, since=None, until=None, before=None, limit=9) == []
    )


def test_old_changes_are_deleted_a_bounded_number_at_a_time(tx: Transaction, pid: int) -> None:
    tx.record_changes([change(pid, 1, "a", str(i)) for i in range(5)])
    at = tx.list_changes(pid, 0, 1)[0].at
    assert tx.delete_changes_before(pid, at, 10) == 0
    assert tx.delete_changes_before(pid, at + 1, 3) == 3
    assert [c.seq for c in tx.list_changes(pid, 0, 10)] == [4, 5]
    assert tx.delete_changes_before(pid, at + 1, 3) == 2
    assert tx.last_seq(pid) == 5  # the counter never goes back


def test_history_retention_is_per_project(tx: Transaction, pid: int) -> None:
    assert tx.history_retention() == {}
    tx.set_history_retention(pid, 30)
    assert tx.history_retention() == {pid: 30}
    tx.set_history_retention(pid, None)
    assert tx.history_retention() == {}


def test_postgres_announces_commits_of_changes_to_watchers(pg_url: str) -> None:
    watcher, writer = open_storage(pg_url), open_storage(pg_url)
    writer.migrate()
    heard: list[int] = []
    announced = threading.Event()

    def hear(project_id: int) -> None:
        heard.append(project_id)
        announced.set()

    try:
        with writer.transaction() as tx:
            pid = tx.create_project("p", SchemaMode.AUTO, "UTC").id
        watcher.watch_changes(hear)
        # The listener connects in its thread: commit until it hears one.
        while not announced.is_set():
            with writer.transaction() as tx:
                tx.record_changes([change(pid, 1, "a", "v")])
            announced.wait(0.2)
        assert set(heard) == {pid}
    finally:
        watcher.close()
        writer.close()
