"""Rate limits: failed authentications per client address, requests per data source."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest

from conftest import Api, make_settings, new_api
from userprops.errors import RateLimited
from userprops.http.app import App
from userprops.ratelimit import RateLimits, TokenBuckets
from userprops.storage import Storage


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=0.5, burst=2, clock=clock)
    assert buckets.take("a") is None
    assert buckets.take("a") is None
    assert buckets.take("a") == 2
    clock.now = 2.0
    assert buckets.take("a") is None
    assert buckets.take("b") is None


def test_a_bucket_refills_up_to_its_burst_only() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=2, clock=clock)
    clock.now = 1000.0
    assert [buckets.take("a") for _ in range(3)] == [None, None, 1]


def test_a_token_given_back_can_be_taken_again_but_never_past_the_burst() -> None:
    buckets = TokenBuckets(rate=1, burst=1, clock=Clock())
    assert buckets.take("a") is None
    buckets.give_back("a")
    buckets.give_back("a")
    assert [buckets.take("a"), buckets.take("a")] == [None, 1]


def test_memory_is_bounded_by_dropping_the_least_recently_used_bucket() -> None:
    buckets = TokenBuckets(rate=1, burst=1, capacity=3, clock=Clock())
    for key in "abcd":
        buckets.take(key)
    assert len(buckets) == 3
    assert buckets.take("a") is None  # forgotten, so full again
    assert buckets.take("d") == 1


def test_a_rate_of_zero_turns_a_limit_off() -> None:
    limits = RateLimits(auth_fail_rate=0, auth_fail_burst=1, request_rate=0, request_burst=1)
    for _ in range(100):
        limits.reserve_failure("10.0.0.1")
        limits.request(1)


def test_failures_use_up_an_address_not_another() -> None:
    limits = RateLimits(auth_fail_rate=1, auth_fail_burst=2, request_rate=0, request_burst=1)
    limits.reserve_failure("a")
    limits.reserve_failure("a")
    with pytest.raises(RateLimited) as caught:
        limits.reserve_failure("a")
    assert caught.value.headers == {"retry-after": "1"}
    limits.reserve_failure("b")


def basic(key: str, secret: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()}


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
    wrong = basic(api.api_key, "0" * 24)
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
        await api.http.get("/v1/user/property", headers=basic("nobody", "wrong"))
    assert (await api.http.get("/healthz")).status_code == 200
    assert (await api.http.get("/readyz")).status_code == 200
