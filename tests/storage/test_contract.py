"""The storage contract (storage/base.py), run on every backend via the ``storage`` fixture."""

from __future__ import annotations

from typing import Any

import pytest

from userprops.errors import Conflict, UserNotFound
from userprops.schema import AttrType, SchemaMode
from userprops.storage import Storage, StoredValue, Transaction, open_storage


@pytest.fixture
def pid(storage: Storage) -> int:
    with storage.transaction() as tx:
        return tx.create_project("p", SchemaMode.AUTO, "UTC").id


@pytest.fixture
def euid(storage: Storage, pid: int) -> int:
    with storage.transaction() as tx:
        return tx.create_user(pid)


def test_migrate_is_idempotent(storage: Storage) -> None:
    assert storage.migrate() == []
    assert storage.migrate(dry_run=True) == []


def test_project_slugs_are_unique(storage: Storage, pid: int) -> None:
    with pytest.raises(Conflict), storage.transaction() as tx:
        tx.create_project("p", SchemaMode.STRICT, "UTC")
    with storage.read() as tx:
        assert [p.slug for p in tx.list_projects()] == ["p"]


def test_project_settings_change(storage: Storage, pid: int) -> None:
    with storage.transaction() as tx:
        tx.update_project(pid, schema_mode=SchemaMode.STRICT, timezone="Asia/Tokyo")
    with storage.read() as tx:
        project = tx.get_project_by_id(pid)
        assert project is not None
        assert (project.schema_mode, project.timezone) == (SchemaMode.STRICT, "Asia/Tokyo")
        assert tx.get_project("missing") is None


def test_datasources(storage: Storage, pid: int) -> None:
    with storage.transaction() as tx:
        ds = tx.create_datasource(pid, "crm", "k" * 24, "hash")
    with pytest.raises(Conflict), storage.transaction() as tx:
        tx.create_datasource(pid, "crm", "j" * 24, "hash")
    with pytest.raises(Conflict), storage.transaction() as tx:
        tx.create_datasource(pid, "other", "k" * 24, "hash")
    with storage.transaction() as tx:
        assert tx.update_datasource("k" * 24, enabled=False)
        assert tx.update_datasource("k" * 24, secret_hash="new")
        assert not tx.update_datasource("missing", enabled=True)
    with storage.read() as tx:
        got = tx.get_datasource("k" * 24)
        assert got is not None and (got.enabled, got.secret_hash) == (False, "new")
        assert got.id == ds.id
        assert tx.list_datasources(pid) == tx.list_datasources(None) == [got]
        assert tx.list_datasources(pid + 1000) == []


def test_define_attribute_never_changes_a_type(storage: Storage, pid: int) -> None:
    with storage.transaction() as tx:
        assert tx.define_attribute(pid, "age", AttrType.NUMBER) is AttrType.NUMBER
        assert tx.define_attribute(pid, "age", AttrType.STRING) is AttrType.NUMBER
    with storage.read() as tx:
        assert tx.attribute_types(pid, ["age", "nope"]) == {"age": AttrType.NUMBER}
        assert tx.attribute_types(pid, []) == {}
        assert [(n, t) for n, t, _ in tx.list_attributes(pid)] == [("age", AttrType.NUMBER)]


def test_users_and_identities(storage: Storage, pid: int) -> None:
    with storage.transaction() as tx:
        a, b = tx.create_user(pid), tx.create_user(pid)
        assert a != b
        assert tx.bind_identity(pid, "user_id", "alice", a) == a
        assert tx.bind_identity(pid, "user_id", "alice", b) == a
        assert tx.bind_identity(pid, "registration_id", "d1", a) == a
    with storage.read() as tx:
        assert tx.user_project(a) == pid
        assert tx.user_project(a + 1000) is None
        assert tx.find_identity(pid, "user_id", "alice") == a
        assert tx.find_identity(pid, "anonymous_id", "alice") is None
        assert tx.user_identities(pid, a) == [("registration_id", "d1"), ("user_id", "alice")]


def test_lock_user_checks_the_project(storage: Storage, pid: int, euid: int) -> None:
    with storage.transaction() as tx:
        assert tx.lock_user(pid, euid)
        assert not tx.lock_user(pid + 1, euid)
        assert not tx.lock_user(pid, euid + 1000)


def test_has_user_checks_the_project(storage: Storage, pid: int, euid: int) -> None:
    with storage.read() as tx:
        assert tx.has_user(pid, euid)
        assert not tx.has_user(pid + 1, euid)
        assert not tx.has_user(pid, euid + 1000)


def test_values_put_get_delete(storage: Storage, pid: int, euid: int) -> None:
    n, s = StoredValue(AttrType.NUMBER, "1"), StoredValue(AttrType.STRING, "x")
    with storage.transaction() as tx:
        tx.put_values(pid, euid, {"a": n, "b": s})
        tx.put_values(pid, euid, {"a": StoredValue(AttrType.NUMBER, "2")})
    with storage.read() as tx:
        assert tx.get_values(pid, euid) == {"a": StoredValue(AttrType.NUMBER, "2"), "b": s}
        assert tx.get_values(pid, euid, ["b", "zz"]) == {"b": s}
        assert tx.get_values(pid, euid, []) == {}
        assert tx.get_values(pid + 1, euid) == {}
    with storage.transaction() as tx:
        tx.delete_values(pid, euid, ["a", "missing"])
    with storage.read() as tx:
        assert tx.get_values(pid, euid) == {"b": s}
        assert tx.count_rows()["user_values"] == 1


def test_lock_values_reads_the_wanted_values_of_existing_users(
    storage: Storage, pid: int, euid: int
) -> None:
    n, s = StoredValue(AttrType.NUMBER, "7"), StoredValue(AttrType.STRING, "x")
    with storage.transaction() as tx:
        other = tx.create_user(pid)
        assert tx.lock_values({(pid, euid): ["a", "b"], (pid, other): []}) == {
            (pid, euid): {},
            (pid, other): {},
        }
        tx.put_values(pid, euid, {"a": n, "c": n})
        tx.put_values(pid, other, {"b": s, "a": s})
        wanted = {(pid, euid): ["a", "b"], (pid, other): ["b"], (pid, euid + 1000): ["a"]}
        assert tx.lock_values(wanted) == {(pid, euid): {"a": n}, (pid, other): {"b": s}}
        assert tx.lock_values({(pid + 1, euid): ["a"]}) == {}
        assert tx.lock_values({}) == {}


def test_lock_values_spans_projects(storage: Storage, pid: int, euid: int) -> None:
    n = StoredValue(AttrType.NUMBER, "1")
    with storage.transaction() as tx:
        second = tx.create_project("q", SchemaMode.AUTO, "UTC").id
        theirs = tx.create_user(second)
        tx.put_values(pid, euid, {"a": n})
        tx.put_values(second, theirs, {"a": n})
        found = tx.lock_values({(pid, euid): ["a"], (second, theirs): ["a"]})
        assert found == {(pid, euid): {"a": n}, (second, theirs): {"a": n}}
        assert tx.lock_values({(second, euid): ["a"], (pid, theirs): ["a"]}) == {}


def test_write_values_puts_and_deletes_for_many_users(
    storage: Storage, pid: int, euid: int
) -> None:
    n, s = StoredValue(AttrType.NUMBER, "3"), StoredValue(AttrType.STRING, "y")
    with storage.transaction() as tx:
        other = tx.create_user(pid)
        tx.put_values(pid, euid, {"gone": s, "kept": s})
        tx.write_values(
            {(pid, euid, "a"): n, (pid, other, "a"): s, (pid, other, "b"): n},
            [(pid, euid, "gone"), (pid, other, "never-there")],
        )
        tx.write_values({}, [])
    with storage.read() as tx:
        assert tx.get_values(pid, euid) == {"a": n, "kept": s}
        assert tx.get_values(pid, other) == {"a": s, "b": n}


def test_a_failed_transaction_applies_nothing(storage: Storage, pid: int, euid: int) -> None:
    with pytest.raises(RuntimeError), storage.transaction() as tx:
        tx.put_values(pid, euid, {"a": StoredValue(AttrType.STRING, "x")})
        raise RuntimeError("boom")
    with storage.read() as tx:
        assert tx.get_values(pid, euid) == {}


def test_run_batch_keeps_each_jobs_own_outcome(storage: Storage, pid: int, euid: int) -> None:
    def put(name: str) -> Any:
        def job(tx: Transaction) -> str:
            tx.put_values(pid, euid, {name: StoredValue(AttrType.STRING, name)})
            return name

        return job

    def failing(tx: Transaction) -> None:
        tx.put_values(pid, euid, {"bad": StoredValue(AttrType.STRING, "bad")})
        raise UserNotFound()

    results = storage.run_batch([put("a"), failing, put("b")])
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], UserNotFound)
    with storage.read() as tx:
        assert set(tx.get_values(pid, euid)) == {"a", "b"}


def test_committed_batches_are_seen_by_a_new_connection(
    storage_url: str, storage: Storage, pid: int
) -> None:
    def job(tx: Transaction) -> int:
        euid = tx.create_user(pid)
        tx.put_values(pid, euid, {"k": StoredValue(AttrType.STRING, "v")})
        return euid

    [euid] = storage.run_batch([job])
    assert isinstance(euid, int)
    reopened = open_storage(storage_url)
    try:
        with reopened.read() as tx:
            assert tx.get_values(pid, euid) == {"k": StoredValue(AttrType.STRING, "v")}
    finally:
        reopened.close()


def test_ping(storage: Storage) -> None:
    storage.ping()


def test_read_user_is_every_value_of_a_user_of_that_project(
    storage: Storage, pid: int, euid: int
) -> None:
    n, s = StoredValue(AttrType.NUMBER, "4"), StoredValue(AttrType.STRING, "z")
    assert storage.read_user(pid, euid) == {}
    with storage.transaction() as tx:
        tx.put_values(pid, euid, {"b": s, "a": n})
    assert list(storage.read_user(pid, euid) or {}) == ["a", "b"]
    assert storage.read_user(pid, euid) == {"a": n, "b": s}
    assert storage.read_user(pid + 1, euid) is None
    assert storage.read_user(pid, euid + 1000) is None


def test_read_users_answers_each_key_in_order_from_one_snapshot(
    storage: Storage, pid: int, euid: int
) -> None:
    with storage.transaction() as tx:
        other = tx.create_project("q", SchemaMode.AUTO, "UTC").id
        theirs = tx.create_user(other)
        bare = tx.create_user(pid)
        tx.put_values(pid, euid, {"z": StoredValue(AttrType.STRING, "last"),
                                  "a": StoredValue(AttrType.NUMBER, "1")})  # fmt: skip
        tx.put_values(other, theirs, {"m": StoredValue(AttrType.BOOL, "true")})
    mine = {"a": StoredValue(AttrType.NUMBER, "1"), "z": StoredValue(AttrType.STRING, "last")}
    assert storage.read_users([]) == []
    answers = storage.read_users(
        [(other, theirs), (pid, euid), (pid, theirs), (pid, bare), (pid, euid), (other, euid)]
    )
    assert answers == [{"m": StoredValue(AttrType.BOOL, "true")}, mine, None, {}, mine, None]
    assert list(answers[1] or {}) == ["a", "z"]  # in name order
