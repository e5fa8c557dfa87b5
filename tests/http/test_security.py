"""Security promises over HTTP: secrets stored hashed, quiet logs, tenant isolation, and
every malformed Basic credential answered 40050. The ones that need no server:
tests/unit/test_security.py."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator

import pytest

from tests.support.api import Api, new_api
from userprops import admin, auth
from userprops.http.app import App
from userprops.storage import Storage


def test_a_secret_is_stored_only_as_a_salted_keyed_hash(app: App) -> None:
    assert app.services is not None
    storage = app.services.storage
    admin.create_project(storage, "p")
    creds = admin.create_datasource(storage, "p", "ds")
    with storage.read() as tx:
        stored = tx.get_datasource(creds.datasource.api_key)
    assert stored is not None
    assert creds.api_secret not in stored.secret_hash
    scheme, salt, digest = stored.secret_hash.split("$")
    assert (scheme, len(salt), len(digest)) == ("hmac-sha256", 32, 64)
    assert auth.verify_secret(creds.api_secret, stored.secret_hash)
    assert not auth.verify_secret(creds.api_secret[:-1] + "x", stored.secret_hash)


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


def credential_variants(key: str, secret: str) -> dict[str, tuple[bytes, int]]:
    """Authorization header → the code it gets (0: accepted)."""
    good = b64(f"{key}:{secret}".encode())
    return {
        "canonical": (b"Basic " + good, 0),
        "lowercase scheme": (b"basic " + good, 0),
        "uppercase scheme": (b"BASIC " + good, 0),
        "extra spaces": (b"Basic    " + good + b"  ", 0),
        "no token": (b"Basic", 40050),
        "only spaces after scheme": (b"Basic    ", 40050),
        "tab instead of space": (b"Basic\t" + good, 40050),
        "bearer scheme": (b"Bearer " + good, 40050),
        "no colon": (b"Basic " + b64(f"{key}{secret}".encode()), 40050),
        "empty key": (b"Basic " + b64(f":{secret}".encode()), 40050),
        "empty secret": (b"Basic " + b64(f"{key}:".encode()), 40050),
        "only a colon": (b"Basic " + b64(b":"), 40050),
        "not utf-8": (b"Basic " + b64(key.encode() + b":\xff\xfe"), 40050),
        "not base64": (b"Basic !!!notbase64!!!", 40050),
        "base64 with garbage": (b"Basic " + good + b"$", 40050),
        "raw non-ascii header": (b"Basic \xc3\xa9\xff", 40050),
        "wrong secret": (b"Basic " + b64(f"{key}:{'0' * 24}".encode()), 40050),
        "secret with a colon appended": (b"Basic " + b64(f"{key}:{secret}:".encode()), 40050),
        "unknown key": (b"Basic " + b64(f"{'f' * 24}:{secret}".encode()), 40050),
    }


@pytest.mark.parametrize("variant", list(credential_variants("k", "s")))
async def test_basic_auth_variants_get_their_documented_answer(api: Api, variant: str) -> None:
    header, code = credential_variants(api.api_key, api.api_secret)[variant]
    r = await api.http.get("/v1/user/property?euid=1", headers={b"authorization": header})
    expected = 40404 if code == 0 else 40050  # accepted: then the EUID is unknown
    assert r.json()["code"] == expected
    if code:
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Basic")


async def test_a_missing_authorization_header_is_40050(api: Api) -> None:
    r = await api.http.post("/v1/user/property", json={})
    assert (r.status_code, r.json()["code"]) == (401, 40050)


async def test_a_disabled_data_source_is_refused(app: App) -> None:
    assert app.services is not None
    client = await new_api(app, "off")
    admin.set_datasource_enabled(app.services.storage, client.api_key, False)
    r = await client.get("/v1/user/property", euid=1)
    assert r.json()["code"] == 40050
    await client.http.aclose()


# Logs


async def test_logs_never_hold_a_secret_or_the_authorization_header(
    api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    [euid] = await api.register("u1")
    assert api.app.services is not None

    async def broken(*args: object) -> object:
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(api.app.services.engine, "set_properties", broken)
    token = api.auth_header["authorization"].split()[1]
    caplog.set_level(logging.DEBUG)
    crashed = await api.set(euid, "set", {"plan": "gold"})
    wrong = await api.http.post(
        "/v1/user/property", json={}, headers={"authorization": f"Basic {token[:-4]}AAAA"}
    )
    assert crashed.status_code == 500 and crashed.json()["code"] == 50000
    assert "Traceback" not in crashed.text and "exploded" not in crashed.text
    assert wrong.status_code == 401
    assert "engine exploded" in caplog.text  # the failure was logged...
    for secret in (api.api_secret, token, token[:16]):
        assert secret not in caplog.text  # ...without the credentials
        assert secret not in crashed.text + wrong.text


# Isolation between projects


@pytest.fixture
async def two_projects(app: App) -> AsyncIterator[tuple[Api, Api]]:
    a, b = await new_api(app, "tenant-a"), await new_api(app, "tenant-b")
    yield a, b
    await a.http.aclose()
    await b.http.aclose()


async def test_a_key_cannot_read_another_projects_user(two_projects: tuple[Api, Api]) -> None:
    a, b = two_projects
    [theirs] = await b.register("victim")
    await b.set(theirs, "set", {"plan": "gold"})
    foreign = await a.get("/v1/user/property", euid=theirs)
    nobody = await a.get("/v1/user/property", euid=theirs + 1000)
    assert foreign.status_code == nobody.status_code == 404
    assert foreign.json() == nobody.json()
    assert foreign.headers == nobody.headers


@pytest.mark.parametrize("op", ["set", "increase", "add", "remove", "delete"])
async def test_a_key_cannot_write_another_projects_user(
    two_projects: tuple[Api, Api], op: str
) -> None:
    a, b = two_projects
    [theirs] = await b.register("victim")
    await b.set(theirs, "set", {"plan": "gold"})
    value: object = ["x"] if op in ("add", "remove") else 1
    foreign = await a.set(theirs, op, {"plan": value})
    nobody = await a.set(theirs + 1000, op, {"plan": value})
    assert foreign.status_code == nobody.status_code == 404
    assert foreign.json() == nobody.json()
    assert await b.props(theirs) == {"plan": "gold"}


async def test_the_same_identity_in_two_projects_is_two_users(
    two_projects: tuple[Api, Api],
) -> None:
    a, b = two_projects
    [in_a], [in_b] = await a.register("same"), await b.register("same")
    assert in_a != in_b
    await a.set(in_a, "set", {"plan": "a"})
    assert await b.props(in_b) == {}


async def test_a_project_never_learns_another_projects_attributes(
    two_projects: tuple[Api, Api],
) -> None:
    a, b = two_projects
    [mine], [theirs] = await a.register("m"), await b.register("t")
    await b.set(theirs, "set", {"score": "high"})  # defines score as STRING in b only
    r = await a.set(mine, "increase", {"score": 1})
    assert r.json() == {"code": 0, "message": "success"}


async def test_another_projects_idempotency_key_is_not_seen(
    two_projects: tuple[Api, Api], storage: Storage
) -> None:
    a, b = two_projects
    [mine], [theirs] = await a.register("m"), await b.register("t")
    for client, euid in ((b, theirs), (a, mine)):
        headers = {**client.auth_header, "idempotency-key": "same"}
        body = {"euid": euid, "type": "increase", "properties": {"n": 1}}
        r = await client.http.post("/v1/user/property", json=body, headers=headers)
        assert r.json()["code"] == 0
    assert await a.props(mine) == {"n": 1}
