"""The HTTP client of webhook deliveries: POST a body to an endpoint, read the answer's
status and headers, and keep the connection for the next delivery to the same origin.

Not httpx: on a 2-core machine like ours, an httpx ``AsyncClient`` POST cost 1.4 to 3.7 ms
of CPU (about 3,000 Python calls a request; its pool looks at every pooled connection for
each request; httpcore tries to import sniffio on every call when it is absent), so 1,000
deliveries a second would take more than a core from the server. This does only what a
delivery needs, in well under a tenth of that (docs/performance.md): HTTP/1.1 over asyncio
streams, ``https`` with certificates verified (the system's trust store, SNI),
credentials in the URL sent as Basic auth, no proxies, no redirects (a 3xx is an answer
like any other: a failed attempt). Answers are parsed by httptools (llhttp, the parser
uvicorn serves with): Content-Length, chunked, or up to the close; a body is read up to
:data:`MAX_BODY` bytes and dropped. The caller bounds an attempt's time.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import ssl
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

import httptools

from userprops import __version__

MAX_BODY = 64 * 1024  # bytes of an answer's body read, so that its connection is reused
MAX_IDLE = 64  # idle connections kept per origin
_CHUNK = 16 * 1024


class PostError(Exception):
    """No answer: the connection failed, or what came back is not HTTP."""


class Answer(NamedTuple):
    status: int
    headers: dict[bytes, bytes]  # names lowercased


class _Target(NamedTuple):
    origin: tuple[str, str, int]  # scheme, host, port
    head: bytes  # the request line and the headers every request to it has


@functools.lru_cache(maxsize=1024)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    default = (parts.scheme, port) in (("http", 80), ("https", 443))
    name = f"[{host}]" if ":" in host else host
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = f"POST {path} HTTP/1.1\r\nHost: {name if default else f'{name}:{port}'}\r\n"
    head += f"User-Agent: userprops/{__version__}\r\n"
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        head += f"Authorization: Basic {base64.b64encode(pair.encode()).decode()}\r\n"
    return _Target((parts.scheme, host, port), head.encode())


class _Reading:
    """httptools' callbacks: the answer's headers, and where it is. An interim answer
    (1xx) is forgotten when it ends: the final one follows."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: dict[bytes, bytes] = {}
        self.body = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False  # known to httptools only until the answer ends

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body += len(body)

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            self.headers, self.headers_done = {}, False
        else:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Poster:
    """POSTs with keep-alive connections per origin; :meth:`aclose` closes them all.
    ``ssl_context`` verifies https endpoints (default: the system's trust store)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context or ssl.create_default_context()
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST ``body`` to ``url`` with ``headers``; its answer, or :class:`PostError`."""
        target = _target(url)
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = target.head + f"{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body
        idle = self._idle.get(target.origin)
        if idle:  # a kept connection may have been closed by the endpoint meanwhile
            try:
                return await self._exchange(target.origin, idle.pop(), request, reused=True)
            except _Stale:
                pass
        return await self._exchange(target.origin, await self._open(target.origin), request)

    async def _open(self, origin: tuple[str, str, int]) -> Connection:
        scheme, host, port = origin
        tls = self._ssl if scheme == "https" else None
        try:
            return await asyncio.open_connection(
                host, port, ssl=tls, server_hostname=host if tls else None
            )
        except ssl.SSLError as exc:
            raise PostError(f"TLS: {exc.reason or exc}") from None
        except OSError as exc:
            raise PostError(_reason(exc)) from None

    async def _exchange(
        self,
        origin: tuple[str, str, int],
        conn: Connection,
        request: bytes,
        *,
        reused: bool = False,
    ) -> Answer:
        reader, writer = conn
        reading = _Reading()
        keep = False
        try:
            writer.write(request)
            while not reading.complete and reading.body <= MAX_BODY:
                data = await reader.read(_CHUNK)
                if not data:  # closed: the answer so far is all there is
                    if reading.headers_done:
                        break
                    if reused and not reading.headers:
                        raise _Stale()
                    raise PostError("connection closed before an answer")
                try:
                    reading.parser.feed_data(data)
                except httptools.HttpParserError:
                    if not reading.complete:
                        raise
                    # Bytes after a whole answer (a body sent with a 204): dropped, with
                    # the connection.
                    return Answer(reading.parser.get_status_code(), reading.headers)
            keep = reading.keep_alive
            return Answer(reading.parser.get_status_code(), reading.headers)
        except (OSError, ssl.SSLError) as exc:
            if reused and not reading.headers:
                raise _Stale() from None
            raise PostError(_reason(exc)) from None
        except httptools.HttpParserError as exc:
            raise PostError(f"not an HTTP answer: {exc}") from None
        finally:
            if keep and len(self._idle.setdefault(origin, [])) < MAX_IDLE:
                self._idle[origin].append(conn)
            else:
                writer.close()

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for _, writer in conns:
                writer.close()
        self._idle.clear()


def _reason(exc: OSError) -> str:
    """``Connection refused`` rather than asyncio's ``Connect call failed (...)``."""
    if exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


class _Stale(Exception):
    """A kept connection turned out closed before answering: try a new one."""
