"""Rate limits: token buckets in memory, per client address and per data source.

Two limits, both answering 429 with ``Retry-After`` (:class:`~userprops.errors.RateLimited`):

- **failed authentications per client address**: each failure takes a token from the
  address's bucket; while it is empty, credentials that are not already verified (in the
  authenticator's cache) are refused before they are checked, so guessing stops there
  while a client whose credentials are verified keeps working;
- **requests per data source**: every authenticated request takes a token.

Buckets live in one process's memory, at most ``capacity`` of each kind (the least
recently used is dropped first, which only forgets a limit, never blocks anybody). A rate
of 0 turns a limit off. The client address is the TCP peer: behind a proxy, that is the
proxy's.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from userprops.errors import RateLimited

CAPACITY = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """One bucket per key: ``burst`` tokens at most, refilled at ``rate`` per second."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._capacity = capacity
        self._clock = clock
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def _refilled(self, key: Hashable) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._capacity:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        return bucket

    def take(self, key: Hashable, *, consume: bool = True) -> int | None:
        """Take a token (or, without ``consume``, only look); None when there was one,
        else the whole seconds until there is one (nothing taken)."""
        if not self.enabled:
            return None
        with self._lock:
            bucket = self._refilled(key)
            if bucket.tokens >= 1:
                if consume:
                    bucket.tokens -= 1
                return None
            return max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def spend(self, key: Hashable) -> None:
        """Take a token if there is one (for failures, which are answered anyway)."""
        if self.enabled:
            with self._lock:
                bucket = self._refilled(key)
                bucket.tokens = max(0.0, bucket.tokens - 1)


class RateLimits:
    """The two limits of docs/security.md, built from settings."""

    def __init__(
        self,
        *,
        auth_fail_rate: float,
        auth_fail_burst: float,
        request_rate: float,
        request_burst: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.auth_failures = TokenBuckets(auth_fail_rate, auth_fail_burst, clock=clock)
        self.requests = TokenBuckets(request_rate, request_burst, clock=clock)

    def check_address(self, address: str | None) -> None:
        """429 when ``address`` has used up its failed authentications."""
        wait = self.auth_failures.take(address, consume=False)
        if wait is not None:
            raise RateLimited(wait)

    def failed(self, address: str | None) -> None:
        self.auth_failures.spend(address)

    def request(self, datasource_id: int) -> None:
        """429 when the data source has used up its requests."""
        wait = self.requests.take(datasource_id)
        if wait is not None:
            raise RateLimited(wait)


UNLIMITED = RateLimits(auth_fail_rate=0, auth_fail_burst=1, request_rate=0, request_burst=1)
