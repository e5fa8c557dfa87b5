"""Rate limits over HTTP: failed authentications per client address, requests per data
source. The token buckets themselves: tests/unit/test_ratelimit.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.api import Api, basic_auth, make_settings, new_api
from userprops.http.app import App
from userprops.storage import Storage


@pytest.fixture
async def limited(storage_url: str, storage: Storage) -> AsyncIterator[tuple[Api, Api]]:
    settings = make_settings(
        storage_url, auth_fail_burst=3, auth_fail_rate=0.001, rate_limit=0.001, rate_burst=4
    )
    app = App(settings, storage)
    app.start()
    first, second = await new_api(app, "first"), await new_api(app, "second")
    yield first, second
    await first.http.aclose()
    await second.http.aclose()
    app.stop()


async def test_failed_authentications_are_limited_per_address(limited: tuple[Api, Api]) -> None:
    api, other = limited
    await api.register("warm")  # api's credentials are now verified and cached
    wrong = basic_auth(api.api_key, "0" * 24)
    codes = [(await api.http.get("/v1/user/property?euid=1", headers=wrong)).status_code]
    codes += [(await api.http.get("/v1/user/property?euid=1", headers=wrong)).status_code]
    codes += [(await api.http.get("/v1/user/property?euid=1", headers=wrong)).status_code]
    blocked = await api.http.get("/v1/user/property?euid=1", headers=wrong)
    assert codes == [401, 401, 401]
    assert blocked.status_code == 429
    assert blocked.json()["code"] == 42900
    assert int(blocked.headers["retry-after"]) >= 1
    # Not yet verified credentials from that address wait too; verified ones keep working.
    fresh = await other.http.get("/v1/user/property?euid=1", headers=other.auth_header)
    assert fresh.status_code == 429
    assert (await api.get("/v1/user/property", euid=1)).json()["code"] == 0


async def test_requests_are_limited_per_data_source(limited: tuple[Api, Api]) -> None:
    api, other = limited
    answers = [await api.get("/v1/user/property", euid=1) for _ in range(5)]
    assert [r.status_code for r in answers] == [404, 404, 404, 404, 429]
    assert answers[-1].json()["code"] == 42900
    assert answers[-1].headers["retry-after"].isdigit()
    assert (await other.get("/v1/user/property", euid=1)).status_code == 404


async def test_health_endpoints_are_never_limited(limited: tuple[Api, Api]) -> None:
    api, _ = limited
    for _ in range(10):
        await api.http.get("/v1/user/property", headers=basic_auth("nobody", "wrong"))
    assert (await api.http.get("/healthz")).status_code == 200
    assert (await api.http.get("/readyz")).status_code == 200
