"""When to try a request again, and how long to wait first. No I/O: the clients send and
sleep, and ask :class:`Attempts` what to do after each failure.

Retried: a connection that could not be made (the request was never sent), and answers
429 and 503 (the server applied nothing). A request that may have reached the server
before the connection broke or timed out is retried only when replaying it is harmless:
a GET, or a POST carrying an ``Idempotency-Key`` (the server answers a replay with the
first answer and applies nothing again).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from userprops_client._errors import TransportError

RETRY_STATUSES = frozenset({429, 503})

_NOT_SENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
_MAYBE_SENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How one call retries.

    ``retries``: attempts after the first. The wait before retry *n* (0-based) is drawn
    uniformly from 0 to ``min(max_backoff, backoff * 2**n)`` seconds ("full jitter"), or is
    the server's ``Retry-After`` when that is longer. A call gives up, raising the last
    failure, once its retries are spent or when the next wait would take its total waiting
    past ``max_wait`` seconds.
    """

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_wait: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0 or min(self.backoff, self.max_backoff, self.max_wait) < 0:
            raise ValueError("retry settings must not be negative")

    def backoff_delay(self, retry: int, draw: float) -> float:
        """The wait before retry ``retry`` (0-based) for a uniform ``draw`` in [0, 1)."""
        return draw * min(self.max_backoff, self.backoff * 2.0**retry)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or
    None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Attempts:
    """The retry state of one logical call: its retries left and the time it has waited."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        replayable: bool,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self.replayable = replayable
        self.retries = 0
        self.waited = 0.0
        self._draw = draw

    def after_error(self, exc: httpx.TransportError) -> float:
        """The wait before sending again after ``exc``; raises :class:`TransportError`
        (from ``exc``) when the call gives up."""
        safe = isinstance(exc, _NOT_SENT) or (self.replayable and isinstance(exc, _MAYBE_SENT))
        delay = self._next_delay(None) if safe else None
        if delay is None:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        return delay

    def after_answer(self, response: httpx.Response) -> float | None:
        """The wait before sending again after ``response``, or None when it is final."""
        if response.status_code not in RETRY_STATUSES:
            return None
        return self._next_delay(parse_retry_after(response.headers.get("retry-after")))

    def _next_delay(self, retry_after: float | None) -> float | None:
        if self.retries >= self.policy.retries:
            return None
        delay = self.policy.backoff_delay(self.retries, self._draw())
        if retry_after is not None:
            delay = max(delay, retry_after)
        if self.waited + delay > self.policy.max_wait:
            return None
        self.retries += 1
        self.waited += delay
        return delay
