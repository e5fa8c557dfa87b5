"""Webhook delivery end to end in one process: a server app with its deliverer, a real
HTTP receiver on 127.0.0.1 that verifies every signature, and the outbox in the database.
Retries use delays of milliseconds; every wait is for a condition, with a generous bound.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import standardwebhooks

from tests.support.api import Api, make_settings, new_api
from tests.support.receiver import Answer, Received, Receiver, receiving, wait_until
from userprops import clock, webhooks
from userprops.deliverer import Policy, parse_retry_after, parse_schedule
from userprops.errors import InvalidParameters
from userprops.http.app import App
from userprops.retention import sweep_events
from userprops.storage import Storage, open_storage
from userprops.storage.base import Delivery, Webhook
from userprops_client import verify_webhook

FAST = {"webhook_retry_schedule": "0.05,0.05,0.05", "webhook_timeout": 2.0}


@asynccontextmanager
async def serving(
    storage_url: str, storage: Storage, slug: str = "shop", tz: str = "UTC", **settings: Any
) -> AsyncIterator[Api]:
    """An app (with its deliverer) over ``storage``, and a client of a new project."""
    app = App(make_settings(storage_url, **{**FAST, **settings}), storage)
    app.start()
    api = await new_api(app, slug, tz=tz)
    try:
        yield api
    finally:
        await api.http.aclose()
        app.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


def subscribe(
    storage: Storage, receiver: Receiver, slug: str = "shop", properties: list[str] | None = None
) -> Webhook:
    created = webhooks.create(storage, slug, receiver.url, properties)
    receiver.secret = created.webhook.secret
    return created.webhook


async def arrived(
    receiver: Receiver, condition: Callable[[list[Received]], bool], what: str
) -> list[Received]:
    return await asyncio.to_thread(receiver.wait_for, condition, what)


def delivered_keys(receiver: Receiver) -> list[tuple[int, int]]:
    return [r.key for r in receiver.delivered()]


def is_delivered(storage: Storage, webhook_id: int, seq: int = 1) -> bool:
    found = deliveries(storage, webhook_id).get(seq)
    return found is not None and found.status == "delivered"


def ended(storage: Storage, webhook_id: int, seq: int) -> bool:
    found = deliveries(storage, webhook_id).get(seq)
    return found is not None and found.finished_at is not None


def deliveries(storage: Storage, webhook_id: int) -> dict[int, Delivery]:
    """seq -> delivery, in seq order."""
    with storage.read() as tx:
        found = tx.list_deliveries(webhook_id, None, 1000, None)
    return {d.seq: d for d in sorted(found, key=lambda d: d.seq)}


async def test_every_change_is_posted_as_a_signed_standard_webhook(
    storage_url: str, storage: Storage, receiver: Receiver
) -> None:
    async with serving(storage_url, storage, tz="Asia/Tokyo") as api:
        endpoint = subscribe(storage, receiver)
        [euid] = await api.register("alice")
        await api.set(euid, "set", {"plan": "gold", "seen": "2024-01-02T03:04:05Z"})
        await api.set(euid, "increase", {"spend": 9.9})
        got = await arrived(receiver, lambda r: len(r) == 3, "three deliveries")
        feed = (await api.get("/v1/changes", after=0)).json()["data"]["changes"]

    assert [r.change for r in got] == feed  # the feed's form, in seq order
    assert feed[1]["new"] == "2024-01-02T12:04:05+09:00"  # the project's time zone
    pid = endpoint.project_id
    for r, change in zip(got, feed, strict=True):
        assert r.verified  # by the standardwebhooks package
        assert verify_webhook(r.headers, r.body, endpoint.secret)["data"]["seq"] == change["seq"]
        assert r.headers["webhook-id"] == f"msg_{pid}_{change['seq']}"
        assert r.headers["content-type"] == "application/json"
        assert r.payload["type"] == "user.property.changed"
        assert r.payload["timestamp"] == webhooks.iso(change["at"])
    assert endpoint.secret.startswith("whsec_")
    assert len(base64.b64decode(endpoint.secret.removeprefix("whsec_"))) >= 24


async def test_an_endpoint_gets_the_changes_committed_after_it_and_only_its_properties(
    storage_url: str, storage: Storage, receiver: Receiver
) -> None:
    async with serving(storage_url, storage) as api:
        [euid] = await api.register("alice")
        await api.set(euid, "set", {"plan": "free"})  # before the endpoint: not its own
        with receiving() as everything:
            subscribe(storage, receiver, properties=["plan", "tags"])
            subscribe(storage, everything)
            await api.set(euid, "set", {"plan": "gold", "city": "Oslo"})
            await api.set(euid, "add", {"tags": ["a"]})
            await api.set(euid, "set", {"city": "Rome"})
            await arrived(everything, lambda r: len(r) == 4, "every change")
        got = await arrived(receiver, lambda r: len(r) == 2, "the two wanted changes")
    assert [(r.change["property"], r.change["new"]) for r in got] == [
        ("plan", "gold"),
        ("tags", ["a"]),
    ]


async def test_a_failed_attempt_is_retried_with_the_same_webhook_id(
    storage_url: str, storage: Storage, receiver: Receiver
) -> None:
    failures = {"left": 2}

    def flaky(_: Received) -> Answer:
        if failures["left"]:
            failures["left"] -= 1
            return Answer(503)
        return Answer(204)

    receiver.rule = flaky
    async with serving(storage_url, storage) as api:
        endpoint = subscribe(storage, receiver)
        [euid] = await api.register("alice")
        await api.set(euid, "set", {"plan": "gold"})
        got = await arrived(receiver, lambda r: len(r) == 3, "two retries")
        await asyncio.to_thread(wait_until, lambda: is_delivered(storage, endpoint.id), "it")
    assert [r.answered for r in got] == [503, 503, 204]
    assert len({r.headers["webhook-id"] for r in got}) == 1
    assert len({r.body for r in got}) == 1
    assert all(r.verified for r in got)
    done = deliveries(storage, endpoint.id)[1]
    assert (done.attempts, done.last_status, done.last_error) == (3, 204, None)


async def test_retry_after_lengthens_the_wait_up_to_the_longest_delay(
    storage_url: str, storage: Storage, receiver: Receiver
) -> None:
    receiver.rule = lambda _: Answer(429, {"retry-after": "30"})
    async with serving(storage_url, storage, webhook_retry_schedule="0.05,60") as api:
        endpoint = subscribe(storage, receiver)
        [euid] = await api.register("alice")
        sent = clock.now_ms()
        await api.set(euid, "set", {"plan": "gold"})
        await arrived(receiver, lambda r: len(r) == 1, "the first attempt")
        await asyncio.to_thread(
            wait_until, lambda: deliveries(storage, endpoint.id)[1].last_status == 429, "it"
        )
    pending = deliveries(storage, endpoint.id)[1]
    assert pending.status == "pending" and pending.last_status == 429
    assert pending.next_at >= sent + 30_000  # not the schedule's 0.05 s
    assert pending.next_at <= clock.now_ms() + 30_000
    assert len(receiver.taken()) == 1


async def test_a_failing_user_waits_in_order_while_other_users_are_delivered(
    storage_url: str, storage: Storage, receiver: Receiver
) -> None:
    broken = {"on": True}
    async with serving(storage_url, storage, webhook_retry_schedule=",".join(["0.05"] * 50)) as api:
        alice, bob = await api.register("alice", "bob")
        receiver.rule = lambda r: Answer(500 if broken["on"] and r.key[0] == alice else 200)
        subscribe(storage, receiver)
        for n in range(3):
            await api.set(alice, "set", {"n": n})
            await api.set(bob, "set", {"n": n})
        await arrived(receiver, lambda r: len([x for x in r if x.key[0] == bob]) == 3, "bob's")
        # Alice's first change is retried; her later ones have not been sent at all.
        await arrived(receiver, lambda r: len([x for x in r if x.key[0] == alice]) >= 3, "retries")
        assert {r.change["new"] for r in receiver.taken() if r.key[0] == alice} == {0}
        broken["on"] = False
        await arrived(receiver, lambda _: len(receiver.delivered()) == 6, "everything")
    alices = [r.change["new"] for r in receiver.delivered() if r.key[0] == alice]
    assert alices == [0, 1, 2]
    assert all(r.verified for r in receiver.taken())


async def test_a_dead_letter_releases_the_users_next_change_and_can_be_redelivered(
    storage_url: str, storage: Storage, receiver: Receiver
) -> None:
    poison = {"on": True}
    receiver.rule = lambda r: Answer(400 if poison["on"] and r.change["new"] == "bad" else 200)
    async with serving(storage_url, storage, webhook_retry_schedule="0.05") as api:
        endpoint = subscribe(storage, receiver)
        [euid] = await api.register("alice")
        await api.set(euid, "set", {"plan": "bad"})
        await api.set(euid, "set", {"plan": "good"})
        await asyncio.to_thread(wait_until, lambda: is_delivered(storage, endpoint.id, 2), "2")
        dead = deliveries(storage, endpoint.id)[1]
        assert (dead.status, dead.attempts, dead.last_status) == ("dead", 2, 400)
        assert dead.last_error == "HTTP 400"
        listed = webhooks.listing(storage, "shop")[0]
        assert listed["enabled"] and listed["deliveries"] == {
            "pending": 0,
            "delivered": 1,
            "dead": 1,
        }

        poison["on"] = False
        assert webhooks.redeliver(storage, dead.id) == 1
        got = await arrived(receiver, lambda _: len(receiver.delivered()) == 2, "redelivered")
    assert [r.change["new"] for r in got] == ["bad", "bad", "good", "bad"]
    assert got[-1].headers["webhook-id"] == got[0].headers["webhook-id"]
    assert deliveries(storage, endpoint.id)[1].status == "delivered"


async def test_an_endpoint_that_hangs_times_out_without_holding_up_other_users(
    storage_url: str, storage: Storage, receiver: Receiver
) -> None:
    settings: dict[str, Any] = {"webhook_timeout": 0.3, "webhook_retry_schedule": "60"}
    async with serving(storage_url, storage, **settings) as api:
        slow, quick = await api.register("slow", "quick")
        receiver.rule = lambda r: Answer(200, hang=30 if r.key[0] == slow else 0)
        endpoint = subscribe(storage, receiver)
        await api.set(slow, "set", {"n": 1})
        await api.set(quick, "set", {"n": 1})
        await api.set(quick, "set", {"n": 2})
        await arrived(receiver, lambda _: len(receiver.delivered()) == 2, "the quick user's")
        await asyncio.to_thread(
            wait_until, lambda: deliveries(storage, endpoint.id)[1].last_error is not None, "it"
        )
    hung = deliveries(storage, endpoint.id)[1]
    assert hung.status == "pending" and hung.last_error == "no answer within 0.3 s"


async def test_an_endpoint_that_keeps_failing_is_disabled_and_resumes_when_enabled(
    storage_url: str, storage: Storage, receiver: Receiver
) -> None:
    receiver.stop()  # down: every attempt fails to connect
    settings: dict[str, Any] = {
        "webhook_retry_schedule": ",".join(["0.05"] * 100),
        "webhook_disable_after": 0.3,
        "webhook_disable_failures": 3,
    }
    async with serving(storage_url, storage, **settings) as api:
        endpoint = subscribe(storage, receiver)
        [euid] = await api.register("alice")
        await api.set(euid, "set", {"n": 1})

        def disabled() -> bool:
            return not webhooks.listing(storage, "shop")[0]["enabled"]

        await asyncio.to_thread(wait_until, disabled, "the endpoint disabled")
        listed = webhooks.listing(storage, "shop")[0]
        state = webhooks.state(listed)
        assert state.startswith("disabled: failing since ") and "attempts failed" in state
        assert listed["deliveries"]["pending"] == 1

        await api.set(euid, "set", {"n": 2})  # while disabled: kept for later
        receiver.start()
        webhooks.set_enabled(storage, endpoint.id, True)
        got = await arrived(receiver, lambda _: len(receiver.delivered()) == 2, "both")
    assert [r.change["new"] for r in got] == [1, 2]
    assert webhooks.state(webhooks.listing(storage, "shop")[0]) == "enabled"


async def test_bad_payloads_never_disable_an_endpoint_while_others_succeed(
    storage_url: str, storage: Storage, receiver: Receiver
) -> None:
    """Each bad change fails its six attempts and dies; a success between two of them
    resets the count, so only failures in a row, more than one payload makes, disable."""
    settings: dict[str, Any] = {
        "webhook_retry_schedule": ",".join(["0.05"] * 5),
        "webhook_disable_after": 0.0,
        "webhook_disable_failures": 7,
    }
    receiver.rule = lambda r: Answer(422 if r.change["new"] == "bad" else 200)
    async with serving(storage_url, storage, **settings) as api:
        endpoint = subscribe(storage, receiver)
        users = await api.register("a", "b", "c", "d")
        for seq, value in enumerate(["bad", "good", "bad"], 1):
            await api.set(users[seq - 1], "set", {"v": value})
            await asyncio.to_thread(
                wait_until, functools.partial(ended, storage, endpoint.id, seq), "end"
            )
            with storage.read() as tx:
                now = tx.get_webhook(endpoint.id)
            assert now is not None and now.enabled
            assert now.failures == (0 if value == "good" else 6)  # reset by the good one
        await api.set(users[3], "set", {"v": "bad"})  # 6 + 1 failures in a row: disabled

        def disabled() -> bool:
            with storage.read() as tx:
                now = tx.get_webhook(endpoint.id)
            return now is not None and not now.enabled

        await asyncio.to_thread(wait_until, disabled, "the endpoint disabled")
    assert [d.status for d in deliveries(storage, endpoint.id).values()] == [
        "dead",
        "delivered",
        "dead",
        "pending",
    ]


async def test_two_deliverers_on_one_postgres_database_deliver_each_change_once(
    pg_url: str, receiver: Receiver
) -> None:
    first, second = open_storage(pg_url), open_storage(pg_url)
    first.migrate()
    other = App(make_settings(pg_url, **FAST), second)
    other.start()
    try:
        async with serving(pg_url, first) as api:
            subscribe(first, receiver)
            euids = await api.register(*[f"u{i}" for i in range(10)])
            await asyncio.gather(
                *(api.set(euid, "increase", {"n": 1}) for euid in euids for _ in range(10))
            )
            await arrived(receiver, lambda r: len(r) == 100, "a hundred changes")
            await asyncio.sleep(0.5)  # room for a duplicate to show up, if there were one
    finally:
        other.stop()
        first.close()
        second.close()
    got = receiver.taken()
    assert sorted(r.key[1] for r in got) == list(range(1, 101))
    for euid in euids:
        assert [r.change["new"] for r in got if r.key[0] == euid] == list(range(1, 11))


async def test_a_server_without_deliveries_sends_nothing(
    storage_url: str, storage: Storage, receiver: Receiver
) -> None:
    async with serving(storage_url, storage, deliveries=False) as api:
        assert api.app.deliverer is None
        endpoint = subscribe(storage, receiver)
        [euid] = await api.register("alice")
        await api.set(euid, "set", {"plan": "gold"})
    assert receiver.taken() == []
    assert deliveries(storage, endpoint.id) == {}  # not even fanned out


async def test_the_retention_sweep_removes_deliveries_that_ended_long_ago(
    storage_url: str, storage: Storage, receiver: Receiver
) -> None:
    async with serving(storage_url, storage) as api:
        endpoint = subscribe(storage, receiver)
        [euid] = await api.register("alice")
        await api.set(euid, "set", {"plan": "gold"})
        await asyncio.to_thread(wait_until, lambda: is_delivered(storage, endpoint.id), "it")
        assert api.app.writer is not None
        now = clock.now_ms()
        assert await sweep_events(api.app.writer, now, delivery_retention=60) == 0
        assert await sweep_events(api.app.writer, now + 61_000, delivery_retention=60) == 1
    assert deliveries(storage, endpoint.id) == {}


# The policy and the message, as pure functions


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: at once
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(header, now) == seconds


def test_the_schedule_gives_each_retry_its_delay_then_a_dead_letter() -> None:
    policy = Policy(schedule=(5.0, 300.0))
    assert [policy.retry_delay(n, None) for n in (1, 2, 3)] == [5.0, 300.0, None]
    assert policy.retry_delay(1, 60.0) == 60.0  # the endpoint asked for longer
    assert policy.retry_delay(1, 1.0) == 5.0  # never sooner than the schedule
    assert policy.retry_delay(1, 10**6) == 300.0  # at most the longest delay
    assert Policy(schedule=()).retry_delay(1, 30.0) is None
    assert parse_schedule("5, 300,1800") == (5.0, 300.0, 1800.0)
    assert parse_schedule("") == ()
    for bad in ("5,soon", "-1"):
        with pytest.raises(ValueError, match="USERPROPS_WEBHOOK_RETRY_SCHEDULE"):
            parse_schedule(bad)


def test_an_endpoint_is_disabled_after_failing_long_enough_and_often_enough() -> None:
    policy = Policy(disable_after=10.0, disable_failures=3)
    assert policy.should_disable(0, 3, 10_000)
    assert not policy.should_disable(0, 2, 10_000)  # not enough attempts
    assert not policy.should_disable(0, 30, 9_999)  # not long enough
    assert not policy.should_disable(None, 30, 10**9)  # not failing


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "example.com/hook",
        "http://",
        "https:///path",
        "javascript:alert(1)",
        "http://example.com:99999/",
        "http://exa mple.com/",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/hook",
        "https://example.com/" + "x" * 3000,
        "",
    ],
)
def test_only_http_and_https_urls_with_a_host_are_endpoints(url: str) -> None:
    with pytest.raises(InvalidParameters):
        webhooks.check_url(url)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/hook", "https://hooks.example.com/in?x=1", "http://[::1]/h"],
)
def test_endpoint_urls_may_be_local_or_remote(url: str) -> None:
    assert webhooks.check_url(url) == url


def test_a_signature_is_the_reference_implementations() -> None:
    secret = webhooks.new_secret()
    body = b'{"type":"user.property.changed"}'
    headers = webhooks.headers(secret, "msg_1_2", 1_700_000_000, body)
    at = datetime.fromtimestamp(1_700_000_000, UTC)
    assert headers["webhook-signature"] == standardwebhooks.Webhook(secret).sign(
        "msg_1_2", at, body
    )
    assert headers["webhook-timestamp"] == "1700000000"
