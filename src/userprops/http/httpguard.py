"""A deadline for request headers, which uvicorn does not have.

uvicorn (httptools) closes a keep-alive connection that stays idle between requests, but
waits forever for a new connection's first bytes and for headers that trickle in: a few
hundred such connections ("slowloris") hold the server's sockets. This protocol closes a
connection whose request headers are not complete ``header_timeout`` seconds after it
opened or after the request began. Bodies have their own deadline (``body_timeout``,
enforced by the app).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """Each connection has one timer, set for when its pending headers are due. A request
    that begins only moves that time (an attribute, not a new timer): when the timer fires
    it closes the connection if the headers are late, else re-arms itself for when they
    are due, or for a whole ``header_timeout`` if none are pending."""

    header_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._headers_due: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._headers_due = self.loop.time() + self.header_timeout
        self._header_timer = self.loop.call_at(self._headers_due, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._headers_due = self.loop.time() + self.header_timeout

    def on_headers_complete(self) -> None:
        self._headers_due = None
        super().on_headers_complete()

    def _check(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        due = self._headers_due
        if due is not None and due <= now:
            self.transport.close()
            return
        self._header_timer = self.loop.call_at(
            now + self.header_timeout if due is None else due, self._check
        )


def header_deadline_protocol(header_timeout: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class to give uvicorn (``http=``), with this deadline."""
    return type(
        "HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout": header_timeout}
    )
