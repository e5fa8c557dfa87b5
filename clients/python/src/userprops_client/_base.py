"""What :class:`~userprops_client.Client` and :class:`~userprops_client.AsyncClient` share:
their settings, and the headers and retry state each call starts with."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from userprops_client._calls import Call
from userprops_client._retry import Attempts, RetryPolicy
from userprops_client._version import USER_AGENT

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class BaseClient:
    """The constructor of both clients; each opens its own kind of httpx client."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        retries: int | RetryPolicy = 3,
        idempotency_keys: bool = True,
    ) -> None:
        self.retry_policy = retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries)
        self.idempotency_keys = idempotency_keys
        self._open(
            base_url=base_url,
            auth=httpx.BasicAuth(api_key, api_secret),
            timeout=timeout,
            headers={"user-agent": USER_AGENT},
        )

    def _open(self, **settings: Any) -> None:
        raise NotImplementedError

    def _begin(
        self, call: Call[Any], idempotency_key: str | None
    ) -> tuple[dict[str, str], Attempts]:
        """The headers of every attempt of ``call``, and its retry state.

        A POST gets ``idempotency_key``, or a fresh random one unless keys are turned off;
        it is the same on every attempt, which is what makes replaying it harmless.
        """
        headers: dict[str, str] = {}
        if call.body is not None:
            headers["content-type"] = "application/json"
        if call.method == "POST" and idempotency_key is None and self.idempotency_keys:
            idempotency_key = uuid.uuid4().hex
        if call.method == "POST" and idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        replayable = call.method == "GET" or IDEMPOTENCY_HEADER in headers
        return headers, Attempts(self.retry_policy, replayable=replayable)

    def _timeout(self, call: Call[Any], timeout: httpx.Timeout) -> httpx.Timeout:
        """The client's ``timeout``, with the time a long poll may be held added to its
        read timeout."""
        if not call.hold or timeout.read is None:
            return timeout
        return httpx.Timeout(
            connect=timeout.connect,
            read=timeout.read + call.hold,
            write=timeout.write,
            pool=timeout.pool,
        )
