"""The storage contract of contacts, events and retention, run on every backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from userprops.schema import AttrType, SchemaMode
from userprops.storage import Storage, Transaction
from userprops.storage.base import NewEvent


@pytest.fixture
def tx(storage: Storage) -> Iterator[Transaction]:
    with storage.transaction() as transaction:
        yield transaction


@pytest.fixture
def pid(tx: Transaction) -> int:
    return tx.create_project("p", SchemaMode.AUTO, "UTC").id


def new_event(euid: int, itime: int, random_id: str | None = None, name: str = "e") -> NewEvent:
    return NewEvent(euid, name, itime, random_id, None, "{}")


# Contacts


def test_bind_contact_binds_a_free_value(tx: Transaction, pid: int) -> None:
    euid = tx.create_user(pid)
    assert tx.bind_contact(pid, euid, "email", "a@example.com") == euid
    assert tx.get_contacts(pid, euid) == {"email": "a@example.com"}


def test_bind_contact_replaces_the_users_previous_value(tx: Transaction, pid: int) -> None:
    first, second = tx.create_user(pid), tx.create_user(pid)
    tx.bind_contact(pid, first, "email", "old@example.com")
    tx.bind_contact(pid, first, "email", "new@example.com")
    assert tx.get_contacts(pid, first) == {"email": "new@example.com"}
    assert tx.bind_contact(pid, second, "email", "old@example.com") == second


def test_bind_contact_held_by_another_changes_nothing(tx: Transaction, pid: int) -> None:
    first, second = tx.create_user(pid), tx.create_user(pid)
    tx.bind_contact(pid, first, "email", "a@example.com")
    tx.bind_contact(pid, second, "email", "b@example.com")
    assert tx.bind_contact(pid, second, "email", "a@example.com") == first
    assert tx.get_contacts(pid, second) == {"email": "b@example.com"}


def test_clear_contact_frees_the_value(tx: Transaction, pid: int) -> None:
    first, second = tx.create_user(pid), tx.create_user(pid)
    tx.bind_contact(pid, first, "email", "a@example.com")
    tx.bind_contact(pid, first, "mobile_phone", "12345")
    tx.clear_contact(pid, first, "email")
    tx.clear_contact(pid, first, "whatsapp_phone")
    assert tx.get_contacts(pid, first) == {"mobile_phone": "12345"}
    assert tx.bind_contact(pid, second, "email", "a@example.com") == second


def test_contacts_are_per_project(tx: Transaction, pid: int) -> None:
    other = tx.create_project("q", SchemaMode.AUTO, "UTC").id
    mine, theirs = tx.create_user(pid), tx.create_user(other)
    tx.bind_contact(pid, mine, "email", "a@example.com")
    assert tx.bind_contact(other, theirs, "email", "a@example.com") == theirs
    assert tx.get_contacts(pid, theirs) == {}


# Event definitions and property types


def test_define_event_property_never_changes_a_type(tx: Transaction, pid: int) -> None:
    assert tx.define_event_property(pid, "buy", "amount", AttrType.NUMBER) is AttrType.NUMBER
    assert tx.define_event_property(pid, "buy", "amount", AttrType.STRING) is AttrType.NUMBER
    assert tx.define_event_property(pid, "refund", "amount", AttrType.STRING) is AttrType.STRING
    assert tx.event_property_types(pid, "buy", ["amount", "other"]) == {"amount": AttrType.NUMBER}
    assert tx.event_property_types(pid, "buy", []) == {}
    assert [name for name, _ in tx.list_events_defined(pid)] == ["buy", "refund"]
    assert [(e, n, t) for e, n, t, _ in tx.list_event_properties(pid, None)] == [
        ("buy", "amount", AttrType.NUMBER),
        ("refund", "amount", AttrType.STRING),
    ]
    assert len(tx.list_event_properties(pid, "refund")) == 1


def test_define_events_is_idempotent(tx: Transaction, pid: int) -> None:
    tx.define_events(pid, ["a", "b"])
    tx.define_events(pid, ["b", "c"])
    assert [name for name, _ in tx.list_events_defined(pid)] == ["a", "b", "c"]


def test_existing_users_are_those_of_the_project(tx: Transaction, pid: int) -> None:
    other = tx.create_project("q", SchemaMode.AUTO, "UTC").id
    mine, theirs = tx.create_user(pid), tx.create_user(other)
    assert tx.existing_users(pid, [mine, theirs, 999_999]) == {mine}
    assert tx.existing_users(pid, []) == set()


# Events


def test_insert_events_skips_known_random_ids(tx: Transaction, pid: int) -> None:
    euid = tx.create_user(pid)
    assert tx.insert_events(pid, [new_event(euid, 1, "r1"), new_event(euid, 2)]) == 2
    batch = [new_event(euid, 3, "r1"), new_event(euid, 4, "r2"), new_event(euid, 5, "r2")]
    assert tx.insert_events(pid, batch) == 1
    assert tx.known_random_ids(pid, ["r1", "r2", "r3"]) == {"r1", "r2"}
    assert tx.known_random_ids(pid, []) == set()
    listed = tx.list_events(pid, euid, since=None, until=None, before=None, limit=10)
    assert [e.itime for e in listed] == [4, 2, 1]


def test_random_ids_are_per_project(tx: Transaction, pid: int) -> None:
    other = tx.create_project("q", SchemaMode.AUTO, "UTC").id
    mine, theirs = tx.create_user(pid), tx.create_user(other)
    tx.insert_events(pid, [new_event(mine, 1, "r1")])
    assert tx.insert_events(other, [new_event(theirs, 1, "r1")]) == 1


def test_list_events_orders_filters_and_pages(tx: Transaction, pid: int) -> None:
    euid, other = tx.create_user(pid), tx.create_user(pid)
    tx.insert_events(pid, [new_event(euid, t, name=f"e{i}") for i, t in enumerate([1, 3, 2, 3])])
    tx.insert_events(pid, [new_event(other, 5)])

    def listed(**kw: object) -> list[tuple[int, str]]:
        args: dict[str, object] = {"since": None, "until": None, "before": None, "limit": 10}
        args.update(kw)
        return [(e.itime, e.event_name) for e in tx.list_events(pid, euid, **args)]  # type: ignore[arg-type]

    assert listed() == [(3, "e3"), (3, "e1"), (2, "e2"), (1, "e0")]
    assert listed(since=2, until=3) == [(2, "e2")]
    assert listed(limit=1) == [(3, "e3")]
    [top] = tx.list_events(pid, euid, since=None, until=None, before=None, limit=1)
    assert listed(before=(top.itime, top.id)) == [(3, "e1"), (2, "e2"), (1, "e0")]


def test_stored_events_keep_every_field(tx: Transaction, pid: int) -> None:
    euid = tx.create_user(pid)
    tx.insert_events(pid, [NewEvent(euid, "buy", 7, "r", "app", '{"a":["NUMBER","1"]}')])
    [stored] = tx.list_events(pid, euid, since=None, until=None, before=None, limit=1)
    assert (stored.event_name, stored.itime, stored.random_id, stored.app_key) == (
        "buy",
        7,
        "r",
        "app",
    )
    assert stored.properties == '{"a":["NUMBER","1"]}'
    assert stored.received_at > 0


def test_delete_events_before_deletes_at_most_limit(tx: Transaction, pid: int) -> None:
    euid = tx.create_user(pid)
    other = tx.create_project("q", SchemaMode.AUTO, "UTC").id
    theirs = tx.create_user(other)
    tx.insert_events(pid, [new_event(euid, t) for t in (1, 2, 3, 10)])
    tx.insert_events(other, [new_event(theirs, 1)])
    assert tx.delete_events_before(pid, 10, 2) == 2
    assert tx.delete_events_before(pid, 10, 2) == 1
    assert tx.delete_events_before(pid, 10, 2) == 0
    left = tx.list_events(pid, euid, since=None, until=None, before=None, limit=10)
    assert [e.itime for e in left] == [10]
    assert tx.count_rows()["events"] == 2


def test_event_retention_is_per_project_and_optional(tx: Transaction, pid: int) -> None:
    other = tx.create_project("q", SchemaMode.AUTO, "UTC").id
    assert tx.event_retention() == {}
    tx.set_event_retention(pid, 30)
    tx.set_event_retention(other, 7)
    tx.set_event_retention(other, None)
    assert tx.event_retention() == {pid: 30}
