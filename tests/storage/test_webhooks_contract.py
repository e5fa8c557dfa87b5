"""The storage contract of webhook endpoints and their deliveries (the outbox), run on
every backend: fan-out, claims in order per user, outcomes, redelivery and sweeping."""

from __future__ import annotations

import threading

import pytest

from userprops.errors import ProjectNotFound
from userprops.schema import AttrType, SchemaMode
from userprops.storage import Storage, Transaction
from userprops.storage.base import WAITING, DeliveryWork, NewChange, Outcome

NOW = 1_000_000


@pytest.fixture
def pid(storage: Storage) -> int:
    with storage.transaction() as tx:
        return tx.create_project("p", SchemaMode.AUTO, "Asia/Tokyo").id


def record(storage: Storage, pid: int, *changes: tuple[int, str]) -> None:
    """Commit one change per (euid, property), in order."""
    with storage.transaction() as tx:
        tx.record_changes(
            [
                NewChange(pid, euid, prop, "set", AttrType.STRING, None, f"v{i}", "test")
                for i, (euid, prop) in enumerate(changes)
            ]
        )


def hook(storage: Storage, pid: int, properties: list[str] | None = None) -> int:
    with storage.transaction() as tx:
        return tx.create_webhook(pid, "http://127.0.0.1:9/hook", "whsec_x", properties).id


def fan_out(storage: Storage, limit: int = 100, now: int = NOW) -> tuple[int, bool]:
    with storage.transaction() as tx:
        return tx.fan_out(now, limit)


def claim(storage: Storage, now: int = NOW, limit: int = 10) -> list[tuple[int, int]]:
    """(euid, seq) of what a claim at ``now`` of ``limit`` per endpoint takes, leased for
    1000 ms."""
    with storage.transaction() as tx:
        wanted = dict.fromkeys((w.id for w in tx.list_webhooks(None)), limit)
        due = tx.claim_deliveries(now, now + 1000, wanted)
    return [(d.euid, d.seq) for d in due]


def claimed(storage: Storage, pid: int, *changes: tuple[int, str]) -> int:
    """An endpoint, with ``changes`` committed, fanned out and claimed at NOW."""
    wid = hook(storage, pid)
    record(storage, pid, *changes)
    fan_out(storage)
    claim(storage)
    return wid


def outcome(tx: Transaction, wid: int, seq: int, kind: str, **fields: object) -> Outcome:
    [d] = [d for d in tx.list_deliveries(wid, None, 1000, None) if d.seq == seq]
    return Outcome(d.id, wid, d.euid, d.attempts, kind, **fields)  # type: ignore[arg-type]


def finish(storage: Storage, wid: int, *seqs: int, kind: str = "delivered", now: int = NOW) -> None:
    with storage.transaction() as tx:
        tx.record_outcomes([outcome(tx, wid, s, kind, status=200) for s in seqs], now)


def states(storage: Storage, wid: int) -> dict[int, tuple[str, bool]]:
    """seq -> (status, waiting) of every delivery of the endpoint."""
    with storage.read() as tx:
        return {
            d.seq: (d.status, d.next_at == WAITING)
            for d in tx.list_deliveries(wid, None, 1000, None)
        }


def test_an_endpoint_starts_at_its_projects_last_seq(storage: Storage, pid: int) -> None:
    record(storage, pid, (1, "plan"), (1, "city"))
    wid = hook(storage, pid, ["plan"])
    with storage.read() as tx:
        made = tx.get_webhook(wid)
        assert made is not None
        assert (made.fanned_seq, made.properties, made.enabled) == (2, ("plan",), True)
        assert (made.failing_since, made.failures, made.disabled_reason) == (None, 0, None)
        assert tx.list_webhooks(pid) == [made] == tx.list_webhooks(None)
        assert tx.list_webhooks(pid + 1) == []
        assert tx.get_webhook(wid + 1) is None
    assert fan_out(storage) == (0, False)  # the changes before it are not its own
    with pytest.raises(ProjectNotFound), storage.transaction() as tx:
        tx.create_webhook(pid + 1, "http://x", "whsec_x", None)


def test_fan_out_makes_one_delivery_per_matching_change_first_per_user_due(
    storage: Storage, pid: int
) -> None:
    every, plans = hook(storage, pid), hook(storage, pid, ["plan"])
    record(storage, pid, (1, "plan"), (2, "city"), (1, "city"), (1, "plan"))
    assert fan_out(storage) == (6, False)
    assert states(storage, every) == {
        1: ("pending", False),
        2: ("pending", False),
        3: ("pending", True),
        4: ("pending", True),
    }
    assert states(storage, plans) == {1: ("pending", False), 4: ("pending", True)}
    assert fan_out(storage) == (0, False)  # never twice
    with storage.read() as tx:
        assert [w.fanned_seq for w in tx.list_webhooks(pid)] == [4, 4]
        assert tx.delivery_counts([every, plans, 999]) == {
            every: {"pending": 4},
            plans: {"pending": 2},
        }


def test_fan_out_reads_at_most_limit_changes_per_endpoint(storage: Storage, pid: int) -> None:
    wid = hook(storage, pid, ["b"])
    record(storage, pid, (1, "a"), (1, "a"), (2, "b"))
    assert fan_out(storage, limit=2) == (0, True)  # past two changes it did not want
    assert fan_out(storage, limit=2) == (1, False)
    assert list(states(storage, wid)) == [3]


def test_a_user_s_changes_are_claimed_one_at_a_time_in_order(storage: Storage, pid: int) -> None:
    wid = hook(storage, pid)
    record(storage, pid, (1, "a"), (2, "a"), (1, "b"), (1, "c"))
    fan_out(storage)
    assert claim(storage) == [(1, 1), (2, 2)]
    assert claim(storage) == []  # in flight: leased until NOW + 1000
    finish(storage, wid, 1)
    assert claim(storage) == [(1, 3)]  # user 1's next change, due at once
    finish(storage, wid, 3, kind="dead")  # a dead letter releases the next one
    assert claim(storage) == [(1, 4)]
    assert claim(storage, now=NOW + 1000) == [(2, 2), (1, 4)]  # leases ran out: again
    with storage.read() as tx:
        [d] = tx.list_deliveries(wid, "pending", 10, 4)
    assert (d.seq, d.attempts, d.lease_until) == (2, 2, NOW + 2000)


def test_a_claim_carries_the_change_the_endpoint_and_the_time_zone(
    storage: Storage, pid: int
) -> None:
    wid = hook(storage, pid)
    record(storage, pid, (7, "plan"))
    fan_out(storage)
    with storage.transaction() as tx:
        [due] = tx.claim_deliveries(NOW, NOW + 1000, {wid: 10})
    assert (due.webhook_id, due.euid, due.seq, due.attempt) == (wid, 7, 1, 1)
    assert (due.url, due.secret, due.project_id) == ("http://127.0.0.1:9/hook", "whsec_x", pid)
    assert due.timezone == "Asia/Tokyo"
    assert due.change is not None
    assert (due.change.property, due.change.new, due.change.type) == ("plan", "v0", "STRING")


def test_claims_take_as_many_as_wanted_of_each_endpoint_named(storage: Storage, pid: int) -> None:
    first, second, third = hook(storage, pid), hook(storage, pid), hook(storage, pid)
    record(storage, pid, *[(euid, "a") for euid in range(1, 6)])
    fan_out(storage)
    with storage.transaction() as tx:
        due = tx.claim_deliveries(NOW, NOW + 1000, {first: 2, second: 0, 99: 5})
        assert [(d.webhook_id, d.euid) for d in due] == [(first, 1), (first, 2)]
        tx.set_webhook_enabled(third, False, "paused", NOW)
    assert claim(storage, limit=1) == [(3, 3), (1, 1)]  # the first's third, the second's first


def test_a_failure_is_retried_at_its_time_and_other_users_do_not_wait(
    storage: Storage, pid: int
) -> None:
    wid = hook(storage, pid)
    record(storage, pid, (1, "a"), (1, "b"), (2, "a"))
    fan_out(storage)
    assert claim(storage) == [(1, 1), (2, 3)]
    with storage.transaction() as tx:
        retry = outcome(tx, wid, 1, "retry", next_at=NOW + 5000, status=500, error="HTTP 500")
        health = tx.record_outcomes([retry], NOW)
    assert health == {wid: (True, NOW, 1)}
    finish(storage, wid, 3)  # a success: the endpoint is no longer failing
    with storage.read() as tx:
        webhook = tx.get_webhook(wid)
        first = tx.get_delivery(tx.list_deliveries(wid, None, 9, None)[-1].id)
    assert webhook is not None and (webhook.failing_since, webhook.failures) == (None, 0)
    assert first is not None
    assert (first.seq, first.next_at, first.lease_until) == (1, NOW + 5000, 0)
    assert (first.last_status, first.last_error) == (500, "HTTP 500")
    assert claim(storage, now=NOW + 4999) == []  # user 1's second change waits for the first
    assert claim(storage, now=NOW + 5000) == [(1, 1)]


def test_a_late_failure_of_an_earlier_attempt_is_ignored_but_a_success_counts(
    storage: Storage, pid: int
) -> None:
    wid = claimed(storage, pid, (1, "a"), (2, "a"))
    with storage.transaction() as tx:
        stale = [outcome(tx, wid, 1, "dead"), outcome(tx, wid, 2, "retry", next_at=NOW)]
    claim(storage, now=NOW + 1000)  # both claimed again: attempt 2
    with storage.transaction() as tx:
        tx.record_outcomes(stale, NOW + 1000)
        tx.record_outcomes([stale[0]._replace(kind="delivered", status=204)], NOW + 1000)
    with storage.read() as tx:
        one, two = sorted(tx.list_deliveries(wid, None, 9, None), key=lambda d: d.seq)
    assert (one.status, one.last_status, one.finished_at) == ("delivered", 204, NOW + 1000)
    assert (two.status, two.attempts, two.lease_until) == ("pending", 2, NOW + 2000)


def test_an_outcome_released_frees_the_delivery_at_once(storage: Storage, pid: int) -> None:
    wid = claimed(storage, pid, (1, "a"))
    with storage.transaction() as tx:
        health = tx.record_outcomes([outcome(tx, wid, 1, "released")], NOW)
    assert health == {wid: (True, None, 0)}
    assert claim(storage) == [(1, 1)]


def test_a_disabled_endpoint_is_neither_fanned_out_nor_claimed_until_enabled(
    storage: Storage, pid: int
) -> None:
    wid = claimed(storage, pid, (1, "a"), (2, "a"))
    with storage.transaction() as tx:
        tx.record_outcomes([outcome(tx, wid, 1, "retry", next_at=NOW + 10**6)], NOW)
        assert tx.set_webhook_enabled(wid, False, "failing since then", NOW)
        assert not tx.set_webhook_enabled(wid + 1, False, "no such endpoint", NOW)
    record(storage, pid, (3, "a"))
    assert fan_out(storage) == (0, False)
    assert claim(storage, now=NOW + 10**7) == []
    with storage.read() as tx:
        work = tx.delivery_work(NOW)
        webhook = tx.get_webhook(wid)
    assert work == DeliveryWork(frozenset(), False, {})
    assert webhook is not None and webhook.disabled_reason == "failing since then"
    with storage.transaction() as tx:
        assert tx.set_webhook_enabled(wid, True, None, NOW + 5)
    with storage.read() as tx:
        assert tx.delivery_work(NOW + 5) == DeliveryWork(frozenset({pid}), True, {wid: NOW + 5})
    assert fan_out(storage) == (1, False)  # resumed where it stopped
    assert claim(storage, now=NOW + 5) == [(1, 1), (3, 3)]  # the retry is due at once


def test_delivery_work_says_what_is_due_without_taking_it(storage: Storage, pid: int) -> None:
    with storage.read() as tx:
        assert tx.delivery_work(NOW) == DeliveryWork(frozenset(), False, {})
    wid = hook(storage, pid)
    with storage.read() as tx:
        assert tx.delivery_work(NOW) == DeliveryWork(frozenset({pid}), False, {wid: None})
    record(storage, pid, (1, "a"), (1, "b"))
    with storage.read() as tx:
        assert tx.delivery_work(NOW) == DeliveryWork(frozenset({pid}), True, {wid: None})
    fan_out(storage, now=NOW - 5)
    with storage.read() as tx:
        assert tx.delivery_work(NOW) == DeliveryWork(frozenset({pid}), False, {wid: NOW - 5})
    claim(storage)
    with storage.read() as tx:  # in flight, and the next one waits for it
        assert tx.delivery_work(NOW) == DeliveryWork(frozenset({pid}), False, {wid: None})


def test_redelivery_queues_dead_letters_again_in_order_per_user(storage: Storage, pid: int) -> None:
    wid = claimed(storage, pid, (1, "a"), (1, "b"), (2, "a"), (1, "c"))
    finish(storage, wid, 1, 3, kind="dead")
    claim(storage)
    finish(storage, wid, 2, kind="dead")
    assert states(storage, wid) == {
        1: ("dead", False),
        2: ("dead", False),
        3: ("dead", False),
        4: ("pending", False),
    }
    with storage.transaction() as tx:
        assert tx.redeliver(wid, None, NOW) == 3
        assert tx.redeliver(wid + 1, None, NOW) == 0
    assert states(storage, wid) == {
        1: ("pending", False),
        2: ("pending", True),
        3: ("pending", False),
        4: ("pending", True),  # now behind user 1's older changes
    }
    assert claim(storage) == [(1, 1), (2, 3)]
    with storage.read() as tx:
        first = tx.list_deliveries(wid, None, 9, None)[-1]
    assert (first.seq, first.attempts, first.finished_at) == (1, 1, None)
    finish(storage, wid, 1)
    assert claim(storage) == [(1, 2)]
    finish(storage, wid, 2)
    assert claim(storage) == [(1, 4)]


def test_redelivering_one_delivery_by_id(storage: Storage, pid: int) -> None:
    wid = claimed(storage, pid, (1, "a"), (2, "a"))
    finish(storage, wid, 1, 2)
    with storage.read() as tx:
        ids = {d.seq: d.id for d in tx.list_deliveries(wid, None, 9, None)}
    with storage.transaction() as tx:
        assert tx.redeliver(wid, [ids[2]], NOW) == 1
        assert tx.redeliver(wid, [], NOW) == 0
    assert states(storage, wid) == {1: ("delivered", False), 2: ("pending", False)}
    assert claim(storage) == [(2, 2)]


def test_finished_deliveries_are_swept_and_an_endpoint_is_deleted_with_its_own(
    storage: Storage, pid: int
) -> None:
    wid = claimed(storage, pid, (1, "a"), (2, "a"), (3, "a"))
    finish(storage, wid, 1, now=NOW)
    finish(storage, wid, 2, kind="dead", now=NOW + 10)
    with storage.transaction() as tx:
        assert tx.delete_deliveries_before(NOW + 10, 5) == 1
        assert tx.delete_deliveries_before(NOW + 11, 5) == 1
        assert tx.delete_deliveries_before(NOW + 11, 5) == 0
        assert [d.seq for d in tx.list_deliveries(wid, None, 9, None)] == [3]
        assert tx.delete_webhook(wid)
        assert not tx.delete_webhook(wid)
        assert tx.get_delivery(1) is None
        assert tx.count_rows()["deliveries"] == 0


def test_history_retention_keeps_the_changes_pending_and_dead_deliveries_need(
    storage: Storage, pid: int
) -> None:
    wid = claimed(storage, pid, (1, "a"), (2, "a"), (3, "a"), (4, "a"))
    finish(storage, wid, 1)
    finish(storage, wid, 2, kind="dead")
    with storage.transaction() as tx:
        at = tx.list_changes(pid, 0, 1)[0].at
        assert tx.delete_changes_before(pid, at + 1, 10) == 1
        assert [c.seq for c in tx.list_changes(pid, 0, 10)] == [2, 3, 4]


def test_an_endpoint_whose_changes_were_swept_while_disabled_skips_them(
    storage: Storage, pid: int
) -> None:
    wid = hook(storage, pid)
    with storage.transaction() as tx:
        tx.set_webhook_enabled(wid, False, "paused", NOW)
    record(storage, pid, (1, "a"), (2, "a"))
    with storage.transaction() as tx:
        at = tx.list_changes(pid, 0, 1)[0].at
        assert tx.delete_changes_before(pid, at + 1, 10) == 2  # nobody enabled needs them
        tx.set_webhook_enabled(wid, True, None, NOW)
    assert fan_out(storage) == (0, False)
    with storage.read() as tx:
        webhook = tx.get_webhook(wid)
    assert webhook is not None and webhook.fanned_seq == 2


def test_a_claimed_change_no_longer_in_the_history_comes_without_it(
    storage: Storage, pid: int
) -> None:
    hook(storage, pid)
    record(storage, pid, (1, "a"))
    fan_out(storage)
    with storage.transaction() as tx:  # as a copy or a hand-made delete could leave it
        tx._execute("DELETE FROM changes")  # type: ignore[attr-defined]
        [due] = tx.claim_deliveries(NOW, NOW + 1, {1: 5})
    assert due.change is None and due.seq == 1


def test_postgres_claims_skip_what_another_transaction_holds(
    two: tuple[Storage, Storage],
) -> None:
    first, second = two
    with first.transaction() as tx:
        pid = tx.create_project("p", SchemaMode.AUTO, "UTC").id
    hook(first, pid)
    record(first, pid, *[(euid, "a") for euid in range(1, 7)])
    with first.transaction() as one:
        assert one.fan_out(NOW, 100) == (6, False)
    with first.transaction() as one:
        mine = one.claim_deliveries(NOW, NOW + 1000, {1: 3})
        with second.transaction() as other:  # does not wait: takes the others
            assert other.fan_out(NOW, 100) == (0, False)
            theirs = other.claim_deliveries(NOW, NOW + 1000, {1: 10})
    assert sorted(d.euid for d in mine + theirs) == [1, 2, 3, 4, 5, 6]


def test_postgres_fans_out_an_endpoint_in_one_transaction_at_a_time(
    two: tuple[Storage, Storage],
) -> None:
    first, second = two
    with first.transaction() as tx:
        pid = tx.create_project("p", SchemaMode.AUTO, "UTC").id
    wid = hook(first, pid)
    record(first, pid, (1, "a"), (1, "b"))
    entered, release = threading.Event(), threading.Event()

    def holder() -> None:
        with first.transaction() as tx:
            tx.fan_out(NOW, 100)
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    entered.wait(10)
    try:
        assert fan_out(second) == (0, False)  # skipped, not waited for
    finally:
        release.set()
        thread.join()
    assert fan_out(second) == (0, False)
    assert states(first, wid) == {1: ("pending", False), 2: ("pending", True)}
