"""The envelope on every path, the order of checks and authentication (docs/errors.md)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.support.api import Api, asgi_client, make_settings
from userprops.http.app import App


def basic(raw: bytes) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


def assert_envelope(r: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body: dict[str, Any] = r.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) <= {"code", "message", "data", "errors"}
    return body


async def test_unknown_path_is_404_whatever_the_credentials(api: Api) -> None:
    for headers in ({}, api.auth_header):
        r = await api.http.post("/v1/nope", headers=headers, content=b"{}")
        assert_envelope(r, 404, 40400)
    assert_envelope(await api.http.get("/"), 404, 40400)


async def test_wrong_method_is_405_with_allow(api: Api) -> None:
    r = await api.http.delete("/v1/user/property")
    assert_envelope(r, 405, 40500)
    assert r.headers["allow"] == "GET, POST"
    r = await api.http.get("/v1/user/register", headers=api.auth_header)
    assert_envelope(r, 405, 40500)
    assert r.headers["allow"] == "POST"


async def test_too_large_body_is_413_before_authentication(api: Api) -> None:
    big = b'{"euid": 1, "type": "set", "properties": {"a": "' + b"x" * (1024 * 1024) + b'"}}'
    r = await api.http.post("/v1/user/property", content=big)
    assert_envelope(r, 413, 41300)


async def test_body_limit_is_configurable(storage: Any, storage_url: str) -> None:
    app = App(make_settings(storage_url, max_body_bytes=100), storage)
    app.start()
    try:
        async with asgi_client(app, "http://t") as http:
            r = await http.post("/v1/user/register", content=b"{" + b" " * 200 + b"}")
            assert_envelope(r, 413, 41300)
            r = await http.post("/v1/user/register", content=b"{}")
            assert_envelope(r, 401, 40050)
    finally:
        app.stop()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": ""},
        {"authorization": "Bearer abc"},
        {"authorization": "Basic"},
        {"authorization": "Basic !!!notbase64"},
        basic(b"no-colon"),
        basic(b":secret"),
        basic(b"key:"),
        basic(b"\xff\xfe:\xff"),
        basic(b"unknownkey:unknownsecret"),
    ],
)
async def test_bad_credentials_are_40050_with_www_authenticate(
    api: Api, headers: dict[str, str]
) -> None:
    r = await api.http.post("/v1/user/property", headers=headers, content=b"not json")
    assert_envelope(r, 401, 40050)
    assert r.headers["www-authenticate"].startswith("Basic")


async def test_wrong_secret_is_40050(api: Api) -> None:
    r = await api.http.get(
        "/v1/user/property?euid=1", headers=basic(f"{api.api_key}:{'0' * 24}".encode())
    )
    assert_envelope(r, 401, 40050)


async def test_scheme_is_case_insensitive(api: Api) -> None:
    token = api.auth_header["authorization"].split(" ", 1)[1]
    [euid] = await api.register("u")
    for scheme in ("basic", "BASIC", "Basic "):
        r = await api.http.get(
            f"/v1/user/property?euid={euid}", headers={"authorization": f"{scheme} {token}"}
        )
        assert_envelope(r, 200, 0)


async def test_disabled_data_source_is_40050(api: Api) -> None:
    from userprops import admin

    assert api.app.services is not None
    services = api.app.services
    admin.set_datasource_enabled(services.storage, api.api_key, False)
    services.auth._cache.clear()  # what the TTL does in production
    r = await api.post("/v1/user/register", {"identity_name": "user_id", "identity_values": ["a"]})
    assert_envelope(r, 401, 40050)
    admin.set_datasource_enabled(services.storage, api.api_key, True)
    r = await api.post("/v1/user/register", {"identity_name": "user_id", "identity_values": ["a"]})
    assert_envelope(r, 200, 0)


async def test_rotated_secret_replaces_the_old_one(api: Api) -> None:
    from userprops import admin

    assert api.app.services is not None
    new = admin.rotate_secret(api.app.services.storage, api.api_key)
    api.app.services.auth._cache.clear()
    r = await api.post("/v1/user/register", {"identity_name": "user_id", "identity_values": ["a"]})
    assert_envelope(r, 401, 40050)
    api.api_secret = new
    r = await api.post("/v1/user/register", {"identity_name": "user_id", "identity_values": ["a"]})
    assert_envelope(r, 200, 0)


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1]", b'"str"', b"null", b"{", b"\xff\xfe", b"[" * 10000, b"NaN"],
)
async def test_body_that_is_not_a_json_object_is_55004(api: Api, body: bytes) -> None:
    for path in ("/v1/user/property", "/v1/user/register"):
        r = await api.http.post(path, content=body, headers=api.auth_header)
        assert_envelope(r, 400, 55004)


async def test_body_is_json_whatever_the_content_type(api: Api) -> None:
    headers = {**api.auth_header, "content-type": "text/plain"}
    r = await api.http.post(
        "/v1/user/register",
        content=b'{"identity_name": "user_id", "identity_values": ["a"]}',
        headers=headers,
    )
    assert_envelope(r, 200, 0)


async def test_authentication_comes_before_body_checks(api: Api) -> None:
    r = await api.http.post("/v1/user/property", content=b"not json")
    assert_envelope(r, 401, 40050)


async def test_health_endpoints_need_no_credentials(api: Api) -> None:
    assert_envelope(await api.http.get("/healthz"), 200, 0)
    assert_envelope(await api.http.get("/readyz"), 200, 0)


async def test_an_unexpected_error_is_a_500_envelope_without_a_trace(api: Api) -> None:
    assert api.app.services is not None
    engine = api.app.services.engine

    async def broken(*args: Any) -> Any:
        raise RuntimeError("secret internals")

    engine.get_properties = broken  # type: ignore[method-assign, assignment]
    r = await api.get("/v1/user/property", euid=1)
    body = assert_envelope(r, 500, 50000)
    assert "secret internals" not in r.text and "Traceback" not in r.text
    assert body["message"] == "internal error"


async def test_metrics_count_answers_by_route_and_status(api: Api) -> None:
    await api.register("u")
    await api.http.get("/nowhere")
    await api.http.request("PROPFIND", "/v1/user/register")
    r = await api.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (
        'userprops_http_responses_total{route="/v1/user/register",method="POST",status="200"} 1'
        in text
    )
    assert 'userprops_http_responses_total{route="unmatched",method="GET",status="404"} 1' in text
    assert 'route="/v1/user/register",method="OTHER",status="405"' in text
    assert "userprops_writer_jobs_total 1" in text
    await api.get("/v1/user/property", euid=1)
    text = (await api.http.get("/metrics")).text
    assert "userprops_reader_batches_total 1" in text
    assert "userprops_reader_jobs_total 1" in text
