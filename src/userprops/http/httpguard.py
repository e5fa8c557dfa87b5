"""The limits of the HTTP layer that uvicorn lacks (docs/security.md, "The HTTP layer").

uvicorn's httptools protocol, subclassed. uvicorn by itself:

- parses every byte it has read, however many requests they hold: pipelined requests
  queue without bound (8 connections pipelining ``GET /healthz`` took a server to 1.8 GB);
- has no size limit on the request line and headers;
- waits forever for a new connection's first bytes, for headers that trickle in
  ("slowloris"), and for a client that never reads its answers;
- accepts any number of connections.

:class:`GuardedProtocol` feeds the parser at most one request head at a time and stops
where uvicorn asks reading to pause (a request is queued behind the one being answered,
or a body waits to be read), keeping the rest of the bytes read, unparsed, with the socket
paused; it answers a head over ``max_header_bytes`` with the 431 envelope; it closes a
connection whose headers are late (``header_timeout``) or whose client has not taken its
answer (``send_timeout``); and beyond ``max_connections`` it closes new connections at
once. What one connection can make the server hold is then: the request being answered,
one request queued behind it, one read of unparsed bytes (at most 256 KB), and the answer
being sent with uvicorn's write buffer (64 KiB).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httptools
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from userprops.errors import HeadersTooLarge
from userprops.http.responses import Response, error_response

log = logging.getLogger("userprops.http")

# Fed to the parser at once when no request head ends sooner: bounds how far the parser
# runs past a point where reading should pause (a body beyond uvicorn's 64 KiB mark).
FEED_BYTES = 64 * 1024
_HEAD_END = b"\r\n\r\n"
_WARN_INTERVAL = 60.0


class Quiet:
    """Warnings a client can cause at will, logged at most once a minute each, with how
    many happened: a line per bad request or refused connection would let anyone fill
    the disk with the log."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def warn(self, message: str) -> None:
        self._count[message] = self._count.get(message, 0) + 1
        now = time.monotonic()
        if now - self._last.get(message, -_WARN_INTERVAL) >= _WARN_INTERVAL:
            self._last[message] = now
            log.warning("%s (%d so far; said at most once a minute)", message, self._count[message])


@dataclass
class Connections:
    """What every connection of one server shares: how many are open, at most how many,
    and its quieted warnings."""

    limit: int
    open: int = 0
    quiet: Quiet = field(default_factory=Quiet)

    def refuse(self) -> None:
        self.quiet.warn("max_connections connections open: closing new ones")


class _Flow(FlowControl):
    """uvicorn's flow control, with reading in the protocol's hands: uvicorn's wishes
    (``read_paused``) are one of the reasons the protocol stops parsing."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedProtocol) -> None:
        super().__init__(transport)
        self._protocol = protocol

    def pause_reading(self) -> None:
        self.read_paused = True
        self._protocol.update_reading()

    def resume_reading(self) -> None:
        self.read_paused = False
        self._protocol.update_reading()


class GuardedProtocol(HttpToolsProtocol):
    """See the module's docstring. The class attributes are set per server by
    :func:`guarded_protocol`."""

    header_timeout: float = 30.0
    send_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024
    connection_limit: Connections = Connections(limit=1000)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._headers_due: float | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._running: RequestResponseCycle | None = None
        self._counted = False
        self._unparsed = b""
        self._offset = 0
        self._reading = True
        self._feeding = False
        self._feed_scheduled = False
        self._head_bytes = 0
        self._refused = False
        self._read_nothing_more = False
        self._last_words = b""

    # Connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = _Flow(transport, self)
        shared = self.connection_limit
        if shared.open >= shared.limit:
            shared.refuse()
            transport.abort()
            return
        shared.open += 1
        self._counted = True
        self._headers_due = self.loop.time() + self.header_timeout
        self._header_timer = self.loop.call_at(self._headers_due, self._check_headers)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self.connection_limit.open -= 1
        for timer in (self._header_timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._send_timer = None
        self._unparsed = b""
        running = self._running
        if running is not None and not running.response_complete:
            # uvicorn marks only the request parsed last, which is not the one being
            # answered when another is queued: that one would write to a closed socket.
            running.disconnected = True
            running.message_event.set()
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    # Reading: one request head at a time, and never past a pause

    def data_received(self, data: bytes) -> None:
        if self._read_nothing_more:
            return
        if self._unparsed:  # only when the transport delivered after it was paused
            self._unparsed = self._unparsed[self._offset :] + bytes(data)
        else:
            self._unparsed = bytes(data)
        self._offset = 0
        self._feed()

    def update_reading(self) -> None:
        """Pause or resume the socket as the parser's state asks; when reading may go on
        and bytes are waiting, parse them (soon, not inside a callback of the parser or of
        a response being completed)."""
        if self.transport.is_closing():
            return
        may_read = not self.flow.read_paused and not self._read_nothing_more
        if may_read and self._unparsed and not self._feeding and not self._feed_scheduled:
            self._feed_scheduled = True
            self.loop.call_soon(self._feed)
        want = may_read and not self._unparsed
        if want != self._reading:
            self._reading = want
            if want:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    def _feed(self) -> None:
        self._feed_scheduled = False
        data, offset = self._unparsed, self._offset
        if self.parser is None or self.transport.is_closing():
            self._unparsed = b""
            return
        if offset < len(data):
            self._unset_keepalive_if_required()
        self._feeding = True
        try:
            while offset < len(data) and not self.flow.read_paused:
                end = data.find(_HEAD_END, offset, offset + FEED_BYTES)
                end = min(len(data), offset + FEED_BYTES) if end < 0 else end + len(_HEAD_END)
                parsed = self._parse(memoryview(data)[offset:end])
                if parsed is None:  # the connection is being closed
                    data, offset = b"", 0
                    break
                offset += parsed
        finally:
            self._feeding = False
        if offset >= len(data):
            self._unparsed, self._offset = b"", 0
        else:
            self._unparsed, self._offset = data, offset
        self.update_reading()

    def _parse(self, chunk: memoryview) -> int | None:
        """Feed ``chunk``; how many of its bytes were consumed, or None to stop."""
        try:
            self.parser.feed_data(chunk)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
                return None
            # Served as a plain request, and the connection closed after it: nothing after
            # its head is read (llhttp skips the body of an upgrade request, so a body a
            # proxy forwarded as such would be read as requests: request smuggling).
            self.connection_limit.quiet.warn("a request asked to upgrade (to WebSocket): none")
            self.cycle.keep_alive = False
            self._read_nothing_more = True
            return None
        except httptools.HttpParserError:
            if not self._refused:
                self.connection_limit.quiet.warn("invalid HTTP requests answered 400")
                self.send_400_response("Invalid HTTP request received.")
            return None
        if self._refused or self.transport.is_closing():
            return None
        return len(chunk)

    # The request head: its size and its deadline

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._headers_due = self.loop.time() + self.header_timeout

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._headers_due = None
        super().on_headers_complete()

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_header_bytes and not self._refused:
            error = HeadersTooLarge(f"request head larger than {self.max_header_bytes} bytes")
            self._refuse(error_response(error, close=True))
        if self._refused:
            raise _Refused()  # stops the parser: nothing after this is read

    def send_400_response(self, msg: str) -> None:
        """uvicorn's plain-text 400 for what is not HTTP, in its turn (see :meth:`_refuse`)."""
        body = msg.encode("ascii")
        self._refuse(Response(400, body, {"content-type": "text/plain; charset=utf-8"}))

    def _refuse(self, response: Response) -> None:
        """Answer a request that never became one (its head is too large, or not HTTP),
        then close: nothing after it is read. The answer waits for the answers to the
        requests before it, so that a client pipelining reads each answer in its place."""
        self._refused = self._read_nothing_more = True
        head = [STATUS_LINE[response.status]]
        headers = {
            "content-type": "application/json",
            "content-length": str(len(response.body)),
            **response.headers,
            "connection": "close",
        }
        head.extend(f"{k}: {v}\r\n".encode() for k, v in headers.items())
        self._last_words = b"".join(head) + b"\r\n" + response.body
        self._say_last_words()

    def _say_last_words(self) -> None:
        running = self._running
        if (
            self._last_words
            and not self.pipeline
            and (running is None or running.response_complete)
        ):
            self.transport.write(self._last_words)
            self._last_words = b""
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._say_last_words()

    def _check_headers(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        due = self._headers_due
        if due is not None and due <= now:
            self.transport.close()
            return
        self._header_timer = self.loop.call_at(
            now + self.header_timeout if due is None else due, self._check_headers
        )

    # Writing: a client that does not take its answers is let go

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.send_timeout, self._send_overdue)

    def resume_writing(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        super().resume_writing()

    def _send_overdue(self) -> None:
        self._send_timer = None
        # abort, not close: close would keep the unsent bytes until the client reads them.
        self.transport.abort()


class _Refused(Exception):
    pass


def guarded_protocol(
    *,
    header_timeout: float,
    send_timeout: float,
    max_header_bytes: int,
    max_connections: int,
) -> type[GuardedProtocol]:
    """The protocol class to give uvicorn (``http=``) for one server: these limits, and
    a count of connections of its own."""
    return type(
        "GuardedProtocol",
        (GuardedProtocol,),
        {
            "header_timeout": header_timeout,
            "send_timeout": send_timeout,
            "max_header_bytes": max_header_bytes,
            "connection_limit": Connections(limit=max_connections),
        },
    )
