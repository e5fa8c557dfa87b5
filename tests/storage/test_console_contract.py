"""The storage contract of the admin console (operators, sessions, its key, the audit log,
finding a user by contact, the overview's counts), run on every backend."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from userprops.errors import Conflict
from userprops.schema import SchemaMode
from userprops.storage import Storage, Transaction


@pytest.fixture
def tx(storage: Storage) -> Iterator[Transaction]:
    with storage.transaction() as transaction:
        yield transaction


# Operators


def test_operators_are_created_listed_by_name_and_found(tx: Transaction) -> None:
    bob = tx.create_operator("bob", "hash-b")
    alice = tx.create_operator("alice", "hash-a")
    assert [o.name for o in tx.list_operators()] == ["alice", "bob"]
    assert tx.get_operator("bob") == bob
    assert alice.password_hash == "hash-a" and alice.id != bob.id
    assert tx.get_operator("carol") is None


def test_an_operator_name_is_unique(tx: Transaction) -> None:
    tx.create_operator("alice", "h")
    with pytest.raises(Conflict):
        tx.create_operator("alice", "other")


def test_an_operator_id_is_never_reused(storage: Storage) -> None:
    with storage.transaction() as tx:
        first = tx.create_operator("alice", "h")
        assert tx.delete_operator("alice")
        again = tx.create_operator("alice", "h")
    assert again.id > first.id


def test_deleting_an_operator_ends_its_sessions_only(tx: Transaction) -> None:
    alice = tx.create_operator("alice", "h")
    bob = tx.create_operator("bob", "h")
    tx.create_session("s-alice", alice.id, 0, 10_000)
    tx.create_session("s-bob", bob.id, 0, 10_000)
    assert tx.delete_operator("alice")
    assert not tx.delete_operator("alice")
    assert tx.session_operator("s-alice", 1) is None
    assert tx.session_operator("s-bob", 1) == bob


def test_a_new_password_ends_the_operators_sessions(tx: Transaction) -> None:
    alice = tx.create_operator("alice", "old")
    tx.create_session("s1", alice.id, 0, 10_000)
    assert tx.set_operator_password("alice", "new")
    assert tx.session_operator("s1", 1) is None
    updated = tx.get_operator("alice")
    assert updated is not None and updated.password_hash == "new"
    assert not tx.set_operator_password("nobody", "x")


# Sessions


def test_a_session_is_live_until_it_expires(tx: Transaction) -> None:
    alice = tx.create_operator("alice", "h")
    tx.create_session("s1", alice.id, 1000, 5000)
    assert tx.session_operator("s1", 4999) == alice
    assert tx.session_operator("s1", 5000) is None
    assert tx.session_operator("unknown", 1) is None


def test_a_session_id_is_unique(tx: Transaction) -> None:
    alice = tx.create_operator("alice", "h")
    tx.create_session("s1", alice.id, 0, 10)
    with pytest.raises(Conflict):
        tx.create_session("s1", alice.id, 0, 10)


def test_deleting_sessions_one_or_the_expired(tx: Transaction) -> None:
    alice = tx.create_operator("alice", "h")
    for sid, expires in (("a", 100), ("b", 200), ("c", 300), ("d", 400)):
        tx.create_session(sid, alice.id, 0, expires)
    tx.delete_session("d")
    tx.delete_session("never")
    assert tx.delete_expired_sessions(200) == 2
    assert tx.session_operator("c", 250) == alice
    assert tx.session_operator("d", 250) is None


# The console's key


def test_the_console_key_is_the_first_one_stored(storage: Storage) -> None:
    with storage.transaction() as tx:
        assert tx.console_key("session", "first") == "first"
    with storage.transaction() as tx:
        assert tx.console_key("session", "second") == "first"
        assert tx.console_key("other", "x") == "x"


def test_concurrent_first_calls_agree_on_the_console_key(storage: Storage) -> None:
    found: list[str] = []
    start = threading.Barrier(4)

    def take(candidate: str) -> None:
        start.wait()
        with storage.transaction() as tx:
            found.append(tx.console_key("session", candidate))

    threads = [threading.Thread(target=take, args=(f"k{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 4 and len(set(found)) == 1


# The audit log


def test_audit_entries_are_listed_newest_first_and_paged(tx: Transaction) -> None:
    for i in range(5):
        tx.record_audit(1000 + i, "alice", f"act.{i}", f"t{i}", f'{{"i": {i}}}')
    entries = tx.list_audit(None, 3)
    assert [e.action for e in entries] == ["act.4", "act.3", "act.2"]
    assert entries[0].at == 1004 and entries[0].actor == "alice"
    assert entries[0].target == "t4" and entries[0].details == '{"i": 4}'
    rest = tx.list_audit(entries[-1].id, 10)
    assert [e.action for e in rest] == ["act.1", "act.0"]


# Users by contact, and the overview's counts


def test_find_contact_finds_the_holder_of_an_exact_value(tx: Transaction) -> None:
    pid = tx.create_project("p", SchemaMode.AUTO, "UTC").id
    other = tx.create_project("q", SchemaMode.AUTO, "UTC").id
    euid = tx.create_user(pid)
    tx.bind_contact(pid, euid, "email", "Ann@example.com")
    assert tx.find_contact(pid, "email", "Ann@example.com") == euid
    assert tx.find_contact(pid, "email", "ann@example.com") is None
    assert tx.find_contact(pid, "mobile_phone", "Ann@example.com") is None
    assert tx.find_contact(other, "email", "Ann@example.com") is None


def test_user_counts_are_per_project(tx: Transaction) -> None:
    p = tx.create_project("p", SchemaMode.AUTO, "UTC").id
    q = tx.create_project("q", SchemaMode.AUTO, "UTC").id
    tx.create_project("empty", SchemaMode.AUTO, "UTC")
    for _ in range(3):
        tx.create_user(p)
    tx.create_user(q)
    assert tx.user_counts() == {p: 3, q: 1}


def test_change_counts_are_per_minute_since_a_time(tx: Transaction) -> None:
    p = tx.create_project("p", SchemaMode.AUTO, "UTC").id
    q = tx.create_project("q", SchemaMode.AUTO, "UTC").id
    minute = 60_000
    stamps = [5 * minute - 1, 5 * minute, 5 * minute + 59_999, 6 * minute, 7 * minute + 1]
    change = (1, "a", "set", "STRING", None, "x", "api")
    rows = [(p, seq, *change, at) for seq, at in enumerate(stamps, 1)]
    rows.append((q, 1, *change, 6 * minute))
    tx.load_rows("changes", rows)
    assert tx.change_counts(p, 0) == {4: 1, 5: 2, 6: 1, 7: 1}
    assert tx.change_counts(p, 5 * minute) == {5: 2, 6: 1, 7: 1}
    assert tx.change_counts(q, 0) == {6: 1}
    assert tx.change_counts(p, 8 * minute) == {}
