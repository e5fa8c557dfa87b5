"""Idempotency-Key: a retried POST returns the first answer and applies nothing again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.api import Api, asgi_client, make_settings, new_api
from userprops import admin
from userprops.http.app import App
from userprops.storage import Storage

PROPERTY = "/v1/user/property"


async def post(api: Api, body: object, key: str, path: str = PROPERTY) -> httpx.Response:
    headers = {**api.auth_header, "idempotency-key": key}
    return await api.http.post(path, json=body, headers=headers)


def increase(euid: int, by: int = 1) -> dict[str, object]:
    return {"euid": euid, "type": "increase", "properties": {"visits": by}}


async def test_retried_increase_counts_once_and_gets_the_first_answer(api: Api) -> None:
    [euid] = await api.register("u1")
    first = await post(api, increase(euid), "retry-1")
    again = await post(api, increase(euid), "retry-1")
    assert first.json() == again.json() == {"code": 0, "message": "success"}
    assert await api.props(euid) == {"visits": 1}


async def test_concurrent_requests_with_one_key_apply_once_and_agree(api: Api) -> None:
    [euid] = await api.register("u1")
    answers = await asyncio.gather(*(post(api, increase(euid), "together") for _ in range(8)))
    assert {r.text for r in answers} == {'{"code":0,"message":"success"}'}
    assert await api.props(euid) == {"visits": 1}


async def test_partial_success_is_replayed_with_its_errors(api: Api) -> None:
    [euid] = await api.register("u1")
    body = {"euid": euid, "type": "increase", "properties": {"visits": 1, "Bad Name": 1}}
    first = await post(api, body, "partial")
    again = await post(api, body, "partial")
    assert first.json()["errors"] and again.json() == first.json()
    assert await api.props(euid) == {"visits": 1}


async def test_retried_register_returns_the_same_euids(api: Api) -> None:
    body = {"identity_name": "user_id", "identity_values": ["a", "b", ""]}
    first = await post(api, body, "reg", "/v1/user/register")
    again = await post(api, body, "reg", "/v1/user/register")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()


async def test_retried_event_report_and_contact_get_the_first_answer(api: Api) -> None:
    [euid] = await api.register("u1")
    event = {
        "euid": euid,
        "event_name": "paid",
        "itime": 1654076420772,
        "properties": {"amount": 5},
    }
    report = {"data": [event, {**event, "event_name": "Bad"}]}
    first = await post(api, report, "ev", "/v1/event/report")
    again = await post(api, report, "ev", "/v1/event/report")
    assert first.status_code == 200 and first.json()["errors"]
    assert again.json() == first.json()
    listed = await api.get("/v1/event/list", euid=euid)
    assert len(listed.json()["data"]["events"]) == 1
    contact = {"euid": euid, "contacts": {"email": "a@b.co"}}
    first = await post(api, contact, "ct", "/v1/user/contact")
    again = await post(api, contact, "ct", "/v1/user/contact")
    assert first.json() == again.json() == {"code": 0, "message": "success"}


async def test_same_key_with_another_body_is_refused_and_applies_nothing(api: Api) -> None:
    [euid] = await api.register("u1")
    await post(api, increase(euid), "k")
    other = await post(api, increase(euid, 5), "k")
    assert other.status_code == 422
    assert other.json()["code"] == 42200
    assert await api.props(euid) == {"visits": 1}


async def test_same_key_on_another_endpoint_is_refused(api: Api) -> None:
    [euid] = await api.register("u1")
    await post(api, increase(euid), "k")
    r = await post(
        api, {"identity_name": "user_id", "identity_values": ["x"]}, "k", "/v1/user/register"
    )
    assert r.json()["code"] == 42200


async def test_keys_are_scoped_per_data_source(app: App, api: Api) -> None:
    assert app.services is not None
    creds = admin.create_datasource(app.services.storage, api.project, "second")
    second = Api(api.http, app, api.project, creds.datasource.api_key, creds.api_secret)
    [euid] = await api.register("u1")
    await post(api, increase(euid), "shared-key")
    r = await post(second, increase(euid, 5), "shared-key")
    assert r.json() == {"code": 0, "message": "success"}
    assert await api.props(euid) == {"visits": 6}


async def test_a_failed_request_stores_nothing_so_its_key_stays_free(api: Api) -> None:
    [euid] = await api.register("u1")
    missing = await post(api, increase(euid + 1000), "k")
    assert missing.status_code == 404
    r = await post(api, increase(euid), "k")
    assert r.json() == {"code": 0, "message": "success"}
    assert await api.props(euid) == {"visits": 1}


@pytest.mark.parametrize("key", [b"", b"has space", "é".encode(), b"x" * 256])
async def test_a_malformed_key_is_invalid(api: Api, key: bytes) -> None:
    [euid] = await api.register("u1")
    headers = {b"authorization": api.auth_header["authorization"].encode(), b"idempotency-key": key}
    r = await api.http.post(PROPERTY, json=increase(euid), headers=headers)
    assert r.json()["code"] == 55004
    assert await api.props(euid) == {}


async def test_a_key_is_checked_only_after_authentication(api: Api) -> None:
    r = await api.http.post(PROPERTY, json={}, headers={"idempotency-key": "has space"})
    assert r.json()["code"] == 40050


async def test_a_key_on_get_is_ignored(api: Api) -> None:
    [euid] = await api.register("u1")
    headers = {**api.auth_header, "idempotency-key": "has space"}
    r = await api.http.get(PROPERTY, params={"euid": euid}, headers=headers)
    assert r.json()["code"] == 0


@pytest.fixture
async def expiring_api(storage_url: str, storage: Storage) -> AsyncIterator[Api]:
    app = App(make_settings(storage_url, idempotency_ttl=0.0), storage)
    app.start()
    client = await new_api(app, "expiring")
    yield client
    await client.http.aclose()
    app.stop()


async def test_an_expired_key_applies_again(expiring_api: Api) -> None:
    [euid] = await expiring_api.register("u1")
    await post(expiring_api, increase(euid), "k")
    await post(expiring_api, increase(euid), "k")
    assert await expiring_api.props(euid) == {"visits": 2}


def test_sweep_deletes_only_expired_keys_a_bounded_number_at_a_time(storage: Storage) -> None:
    project = admin.create_project(storage, "p")
    ds = admin.create_datasource(storage, project.slug, "ds").datasource
    with storage.transaction() as tx:
        for i in range(5):
            tx.put_idempotent(ds.id, f"old{i}", "f", b"{}", 1000)
        tx.put_idempotent(ds.id, "fresh", "f", b"{}", 10_000)
    with storage.transaction() as tx:
        assert tx.sweep_idempotent(5000, 3) == 3
        assert tx.sweep_idempotent(5000, 100) == 2
        assert tx.sweep_idempotent(5000, 100) == 0
        assert tx.get_idempotent(ds.id, "fresh", 5000) == ("f", b"{}")
        assert tx.get_idempotent(ds.id, "fresh", 10_000) is None


async def test_a_retry_after_a_restart_gets_the_first_answer(
    storage_url: str, storage: Storage
) -> None:
    settings = make_settings(storage_url)
    first_app = App(settings, storage)
    first_app.start()
    api = await new_api(first_app, "restart")
    [euid] = await api.register("u1")
    first = await post(api, increase(euid), "across-restart")
    first_app.stop()

    second_app = App(settings, storage)
    second_app.start()
    api.http = asgi_client(second_app, "http://t")
    again = await post(api, increase(euid), "across-restart")
    assert again.json() == first.json()
    assert await api.props(euid) == {"visits": 1}
    await api.http.aclose()
    second_app.stop()
