"""Rate limits: token buckets in memory, per client address and per data source.

Two limits, both answering 429 with ``Retry-After`` (:class:`~userprops.errors.RateLimited`):

- **failed authentications per client address**: checking credentials that are not
  already verified (in the authenticator's cache) first takes a token from the address's
  bucket, atomically, and gives it back when they verify. So however many guesses arrive
  at once, at most ``burst`` are checked; while the bucket is empty the rest are refused
  before they are checked, while a client whose credentials are verified keeps working.
  An IPv6 address counts by its /64 network (one host usually holds a whole /64);
- **requests per data source**: every authenticated request takes a token.

Buckets live in one process's memory, at most ``capacity`` of each kind (the least
recently used is dropped first, which only forgets a limit, never blocks anybody). A rate
of 0 turns a limit off. The client address is the TCP peer: behind a proxy, that is the
proxy's.
"""

from __future__ import annotations

import ipaddress
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

    def take(self, key: Hashable) -> int | None:
        """Take a token: None when there was one, else the whole seconds until there is
        one (nothing taken)."""
        if not self.enabled:
            return None
        with self._lock:
            bucket = self._refilled(key)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return None
            return max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def give_back(self, key: Hashable) -> None:
        """Return a token taken by :meth:`take` (never past ``burst``)."""
        if self.enabled:
            with self._lock:
                bucket = self._refilled(key)
                bucket.tokens = min(self.burst, bucket.tokens + 1)


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

    def reserve_failure(self, address: str | None) -> None:
        """Before credentials are checked: take a token from ``address``'s failures, or
        429 when it has none left. :meth:`refund_failure` once they verify."""
        wait = self.auth_failures.take(address_key(address))
        if wait is not None:
            raise RateLimited(wait)

    def refund_failure(self, address: str | None) -> None:
        self.auth_failures.give_back(address_key(address))

    def request(self, datasource_id: int) -> None:
        """429 when the data source has used up its requests."""
        wait = self.requests.take(datasource_id)
        if wait is not None:
            raise RateLimited(wait)


def address_key(address: str | None) -> str | None:
    """What an address counts as: itself, or for IPv6 its /64 network (an IPv4 address
    mapped into IPv6 counts as the IPv4 address)."""
    if address is None or ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


UNLIMITED = RateLimits(auth_fail_rate=0, auth_fail_burst=1, request_rate=0, request_burst=1)
