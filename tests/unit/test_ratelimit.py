"""Rate limits' token buckets and the limits built on them, on a clock the test moves."""

from __future__ import annotations

import pytest

from userprops.errors import RateLimited
from userprops.ratelimit import RateLimits, TokenBuckets


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
