"""Every method of the client, sync and async, against a real server."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from tests.support.clients import Either, either
from tests.support.liveserver import Server
from userprops_client import (
    AsyncClient,
    AuthenticationFailed,
    Client,
    ContactExists,
    EmptyProperties,
    EuidMissing,
    Event,
    IdempotencyKeyReused,
    InvalidParameters,
    InvalidProperties,
    ItemError,
    PayloadTooLarge,
    StaleProperty,
    UserNotFound,
    WriteResult,
)

ITIME = 1_700_000_000_000


async def test_set_then_get_reads_values_back_in_their_stored_form(up: Either) -> None:
    euid = await up.new_user()
    result = await up.set(
        euid,
        {"plan": "gold", "vip": True, "signup": "2023-12-12 00:56:23", "tags": ["a", "b"]},
    )
    assert result == WriteResult() and result.ok
    assert await up.get(euid) == {
        "plan": "gold",
        "vip": True,
        "signup": "2023-12-12T00:56:23+00:00",
        "tags": ["a", "b"],
    }


async def test_increase_is_exact_and_decimals_read_back_as_decimal(up: Either) -> None:
    euid = await up.new_user()
    for _ in range(10):
        await up.increase(euid, {"spend": 0.1, "orders": 1})
    await up.increase(euid, {"big": Decimal("1234567890123456789.123456789")})
    assert await up.get(euid) == {
        "spend": Decimal("1.0"),
        "orders": 10,
        "big": Decimal("1234567890123456789.123456789"),
    }
    await up.increase(euid, {"spend": Decimal("0.1")})
    assert (await up.get(euid))["spend"] == Decimal("1.1")


async def test_add_and_remove_treat_a_list_as_a_set(up: Either) -> None:
    euid = await up.new_user()
    await up.add(euid, {"interests": ["sports", "music"]})
    await up.add(euid, {"interests": ("music", "art")})
    await up.remove(euid, {"interests": "sports"})
    assert await up.get(euid) == {"interests": ["music", "art"]}


async def test_delete_removes_values_whatever_is_sent(up: Either) -> None:
    euid = await up.new_user()
    await up.set(euid, {"plan": "gold", "city": "Paris"})
    assert (await up.delete(euid, {"plan": None, "never_set": 1})).ok
    assert await up.get(euid) == {"city": "Paris"}


async def test_write_methods_send_a_timestamp_and_stale_properties_come_back(
    up: Either,
) -> None:
    euid = await up.new_user()
    await up.set(euid, {"plan": "gold", "visits": 1}, timestamp=ITIME)
    result = await up.set(euid, {"plan": "trial", "city": "Paris"}, timestamp=ITIME - 1)
    assert [(e.property, e.code) for e in result.errors] == [("plan", StaleProperty.code)]
    assert (await up.increase(euid, {"visits": 1}, timestamp=ITIME - 1)).ok  # always applies
    assert (await up.add(euid, {"tags": "a"}, timestamp=ITIME)).ok
    assert (await up.remove(euid, {"tags": "b"}, timestamp=ITIME)).ok
    with pytest.raises(InvalidProperties) as stale:
        await up.delete(euid, {"plan": None}, timestamp=ITIME - 1)
    assert [e.code for e in stale.value.errors] == [55106]
    assert (await up.delete(euid, {"plan": None}, timestamp=ITIME)).ok
    assert await up.get(euid) == {"visits": 2, "city": "Paris", "tags": ["a"]}
    with pytest.raises(InvalidParameters):
        await up.set(euid, {"plan": "x"}, timestamp=-1)


async def test_partial_success_is_returned_with_the_rejected_items(up: Either) -> None:
    euid = await up.new_user()
    result = await up.set(euid, {"plan": "gold", "Bad": 1, "empty": ""})
    assert not result.ok
    assert [(e.property, e.code) for e in result.errors] == [("Bad", 55102), ("empty", 55103)]
    assert await up.get(euid) == {"plan": "gold"}


async def test_every_property_rejected_raises_with_the_items(up: Either) -> None:
    euid = await up.new_user()
    with pytest.raises(InvalidProperties) as invalid:
        await up.set(euid, {"Bad": 1, "empty": None})
    assert (invalid.value.code, invalid.value.status) == (55102, 400)
    assert [e.property for e in invalid.value.errors] == ["Bad", "empty"]
    with pytest.raises(EmptyProperties) as empty:
        await up.set(euid, {"a": "", "b": []})
    assert empty.value.code == 55103 and len(empty.value.errors) == 2
    with pytest.raises(InvalidProperties):
        await up.increase(euid, {"plan_name": "not a number"})


async def test_unknown_or_missing_users_raise(up: Either) -> None:
    with pytest.raises(UserNotFound) as missing:
        await up.get(2**62)
    assert (missing.value.code, missing.value.status) == (40404, 404)
    with pytest.raises(UserNotFound):
        await up.set(2**62, {"plan": "gold"})
    with pytest.raises(EuidMissing):
        await up.set(None, {"plan": "gold"})
    with pytest.raises(InvalidParameters):
        await up.get(0)


async def test_wrong_credentials_raise_authentication_failed(kind: str, server: Server) -> None:
    async with either(kind, server, secret="0" * 24) as wrong:
        with pytest.raises(AuthenticationFailed) as failed:
            await wrong.get(1)
    assert (failed.value.code, failed.value.status) == (40050, 401)


async def test_register_maps_each_value_to_its_euid(up: Either) -> None:
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    first = await up.register("user_id", [a, b, a])
    assert set(first) == {a, b} and first[a] != first[b] and first.ok
    again = await up.register("user_id", [b, "", a])
    assert again == first
    assert [(e.index, e.identity_value, e.code) for e in again.errors] == [(1, "", 55004)]
    with pytest.raises(InvalidParameters) as every_value_bad:
        await up.register("user_id", [""])
    assert every_value_bad.value.errors[0].index == 0
    with pytest.raises(InvalidParameters):
        await up.register("nickname", [a])


async def test_contacts_are_set_read_cleared_and_bound_to_one_user(up: Either) -> None:
    euid, other = await up.new_user(), await up.new_user()
    email = f"{uuid.uuid4().hex}@example.com"
    phone = f"+{uuid.uuid4().int % 10**15:015d}"
    assert (await up.set_contacts(euid, {"email": email, "mobile_phone": phone})).ok
    assert await up.get_contacts(euid) == {"email": email, "mobile_phone": phone}
    with pytest.raises(ContactExists) as taken:
        await up.set_contacts(other, {"email": email})
    assert (taken.value.status, taken.value.errors[0].contact) == (409, "email")
    partial = await up.set_contacts(other, {"email": email, "whatsapp_phone": phone})
    assert [(e.contact, e.code) for e in partial.errors] == [("email", 55014)]
    await up.set_contacts(euid, {"email": ""})
    assert await up.get_contacts(euid) == {"mobile_phone": phone}
    with pytest.raises(InvalidParameters):
        await up.set_contacts(euid, {"fax": "123456"})


async def test_events_are_reported_and_listed_newest_first(up: Either) -> None:
    euid = await up.new_user()
    events = [
        {"euid": euid, "event_name": "login", "itime": ITIME + i, "properties": {"n": i}}
        for i in range(5)
    ]
    dedup = str(uuid.uuid4())
    events.append({"euid": euid, "event_name": "buy", "itime": ITIME + 9, "random_id": dedup})
    assert (await up.report_events(events, app_key="shop")).ok
    again = await up.report_events(
        [{"euid": euid, "event_name": "buy", "itime": ITIME + 9, "random_id": dedup}]
    )
    assert again.ok

    page = await up.list_events(euid, limit=2)
    assert page.euid == euid and page.next_cursor is not None
    assert page.events[0] == Event("buy", ITIME + 9, dedup, "shop", {})
    assert page.events[1] == Event("login", ITIME + 4, None, "shop", {"n": 4})
    rest = await up.list_events(euid, limit=10, cursor=page.next_cursor)
    assert [e.itime for e in rest.events] == [ITIME + i for i in (3, 2, 1, 0)]
    assert rest.next_cursor is None

    every = await up.iter_events(euid, page_size=2)
    assert [e.itime for e in every] == [ITIME + i for i in (9, 4, 3, 2, 1, 0)]
    window = await up.iter_events(euid, since=ITIME + 1, until=ITIME + 4)
    assert [e.itime for e in window] == [ITIME + 3, ITIME + 2, ITIME + 1]
    with pytest.raises(InvalidParameters):
        await up.list_events(euid, cursor="not-a-cursor")


async def test_rejected_events_are_listed_by_index(up: Either) -> None:
    euid = await up.new_user()
    result = await up.report_events(
        [
            {"euid": euid, "event_name": "ok", "itime": ITIME},
            {"euid": euid, "event_name": "Bad", "itime": ITIME},
            {"euid": euid, "event_name": "ok", "itime": ITIME, "properties": {"p": ""}},
        ]
    )
    assert [(e.index, e.code) for e in result.errors] == [(1, 55004), (2, 55103)]
    assert result.errors[1].property == "p"
    with pytest.raises(UserNotFound) as every_event_rejected:
        await up.report_events([{"euid": 2**62, "event_name": "ok", "itime": ITIME}])
    assert every_event_rejected.value.errors == (
        ItemError(code=40404, message=every_event_rejected.value.errors[0].message, index=0),
    )


async def test_a_given_idempotency_key_applies_a_write_once(up: Either) -> None:
    euid = await up.new_user()
    key = uuid.uuid4().hex
    for _ in range(3):
        await up.increase(euid, {"visits": 1}, idempotency_key=key)
    assert await up.get(euid) == {"visits": 1}
    with pytest.raises(IdempotencyKeyReused) as reused:
        await up.increase(euid, {"visits": 2}, idempotency_key=key)
    assert (reused.value.code, reused.value.status) == (42200, 422)


async def test_an_oversized_body_raises_payload_too_large(up: Either) -> None:
    euid = await up.new_user()
    with pytest.raises(PayloadTooLarge) as large:
        await up.set(euid, {"blob": "x" * (1024 * 1024 + 1)})
    assert large.value.status == 413


def test_client_is_a_context_manager(server: Server) -> None:
    with Client(server.api_key, server.api_secret, base_url=server.url) as client:
        assert client.get_contacts(server.register(uuid.uuid4().hex)) == {}
    assert client._http.is_closed


async def test_async_client_is_an_async_context_manager(server: Server) -> None:
    euid = server.register(uuid.uuid4().hex)
    async with AsyncClient(server.api_key, server.api_secret, base_url=server.url) as client:
        assert await client.get(euid) == {}
    assert client._http.is_closed
