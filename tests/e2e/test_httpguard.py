"""The HTTP layer's own limits (docs/security.md, "The HTTP layer"): what one connection
can make the server hold, the size of a request head, clients that do not read their
answers, and the number of connections.

The protocol is driven directly (a fake transport, deterministic) for what it parses and
queues; a real ``userprops serve`` shows what the process holds under attack, measured
from /proc."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from tests.support.liveserver import Server, live_server
from userprops.http.httpguard import GuardedProtocol, guarded_protocol

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.reading = True
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 80)}.get(name)

    def write(self, data: Any) -> None:
        self.written += bytes(data)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


async def _alive(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _server(**limits: Any) -> Callable[[], GuardedProtocol]:
    """A maker of connections (protocols) of one server with these limits."""
    options = dict(header_timeout=30, send_timeout=30, max_header_bytes=65536, max_connections=10)
    options.update(limits)
    config = uvicorn.Config(_alive, lifespan="off", log_level="warning", ws="none")
    cls, state, loop = guarded_protocol(**options), ServerState(), asyncio.get_running_loop()
    return lambda: cls(config=config, server_state=state, app_state={}, _loop=loop)


def _connection(**limits: Any) -> tuple[GuardedProtocol, FakeTransport]:
    protocol, transport = _server(**limits)(), FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_pipelined_requests_queue_at_most_one_behind_the_one_answered() -> None:
    protocol, transport = _connection()
    transport.write = lambda data: None  # type: ignore[method-assign]
    answered = []
    protocol.on_response_complete = lambda: answered.append(1)  # type: ignore[method-assign]
    protocol.data_received(HEALTHZ * 5000)  # one read holding 5,000 requests
    await _settle()
    assert len(answered) == 1  # the first answered; the next waits for its turn
    assert len(protocol.pipeline) <= 1
    assert not transport.reading  # nothing more is read while bytes wait unparsed
    protocol.connection_lost(None)


async def test_every_pipelined_request_is_answered_in_order() -> None:
    protocol, transport = _connection()
    requests = (
        b"".join(b"GET /healthz?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(300))
        + b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
    )
    protocol.data_received(requests)
    while transport.written.count(b"HTTP/1.1 200") < 301:
        await asyncio.sleep(0)
        assert len(protocol.pipeline) <= 1
    assert transport.reading  # everything parsed: reading again
    protocol.connection_lost(None)


async def test_a_request_head_over_the_limit_gets_the_431_envelope() -> None:
    protocol, transport = _connection(max_header_bytes=1000)
    protocol.data_received(b"GET /healthz?" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n" + HEALTHZ)
    assert transport.closed
    head, body = transport.written.split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert json.loads(body)["code"] == 43100
    assert b"connection: close" in head
    await _settle()
    assert transport.written.count(b"HTTP/1.1") == 1  # nothing behind it was answered


async def test_connections_beyond_the_limit_are_closed_at_once() -> None:
    make = _server(max_connections=2)
    made = [make() for _ in range(3)]
    transports = [FakeTransport() for _ in made]
    for protocol, transport in zip(made, transports, strict=True):
        protocol.connection_made(transport)
    assert [t.closed for t in transports] == [False, False, True]
    made[0].connection_lost(None)
    again, transport = make(), FakeTransport()
    again.connection_made(transport)
    assert not transport.closed


# A real server, attacked


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with live_server(tmp_path_factory.mktemp("guard"), send_timeout=3600) as running:
        yield running


def pipeline_without_reading(port: int, request: bytes, volume: int) -> socket.socket:
    """Send ``volume`` bytes of pipelined ``request`` and read nothing; stop early once
    the server stops taking bytes (the socket stays blocked for a second)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    chunk = request * (65536 // len(request))
    sent = stalls = 0
    while sent < volume and stalls < 50:
        try:
            sent += s.send(chunk)
            stalls = 0
        except BlockingIOError:
            stalls += 1
            time.sleep(0.02)
        except OSError:  # the server let go of the connection
            break
    return s


def test_a_url_over_the_limit_gets_the_431_envelope(server: Server) -> None:
    request = b"GET /healthz?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, body = answer.split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert json.loads(body)["code"] == 43100


def test_pipelining_without_reading_keeps_the_servers_memory_bounded(server: Server) -> None:
    """Before the fix, 8 such connections took the server from 36 MB to 1.8 GB."""
    assert server.process is not None
    pid = server.process.pid
    before = rss_bytes(pid)
    peak = before
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes(pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    auth = server.auth_header["authorization"].encode()
    requests = [
        HEALTHZ,
        b"GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n",  # the largest unauthenticated answer
        b"GET /v1/user/property?euid=1 HTTP/1.1\r\nHost: t\r\nAuthorization: " + auth + b"\r\n\r\n",
        b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n",
    ]
    attackers: list[socket.socket] = []
    try:
        results: list[socket.socket] = []
        threads = [
            threading.Thread(
                target=lambda r=r: results.append(
                    pipeline_without_reading(server.port, r, 2 * 1024 * 1024)
                )
            )
            for r in requests * 2
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        attackers = results
        # Other clients are still served while the attackers hold their connections.
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(HEALTHZ)
            assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
        during = rss_bytes(pid)
    finally:
        for s in attackers:
            s.close()
        done.set()
        watcher.join()
    assert peak - before < 64 * 1024 * 1024, (before, peak)
    assert during - before < 64 * 1024 * 1024, (before, during)


def test_a_client_that_does_not_read_its_answers_is_let_go(tmp_path: Path) -> None:
    with live_server(tmp_path, send_timeout=0.5) as running:
        s = pipeline_without_reading(running.port, HEALTHZ, 64 * 1024 * 1024)
        s.setblocking(True)
        s.settimeout(30)
        try:
            while s.recv(1 << 20):  # what was sent before the server let go
                pass
        except ConnectionResetError:
            pass
        s.close()  # the connection ended: no socket.timeout


async def test_what_a_client_can_cause_at_will_is_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A line per upgrade request or per bad request would let anyone fill the disk."""
    upgrade = (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    make = _server()
    with caplog.at_level(logging.WARNING):
        for request in [upgrade * 50, b"NOT HTTP\r\n\r\n"] * 20:
            protocol = make()
            protocol.connection_made(FakeTransport())
            protocol.data_received(request)
            await _settle()
            protocol.connection_lost(None)
    assert len(caplog.records) == 2, [r.getMessage() for r in caplog.records]


async def test_nothing_after_an_upgrade_request_is_read_as_a_request() -> None:
    """llhttp skips the body of a request asking to upgrade: what a proxy forwarded as its
    body would have been read as requests (smuggled past the proxy). It is answered as a
    plain request, and the connection closed after it."""
    smuggled = HEALTHZ.replace(b"/healthz", b"/smuggled")
    head = (
        b"POST /x HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"
        b"Content-Length: %d\r\n\r\n" % len(smuggled)
    )
    protocol, transport = _connection()
    protocol.data_received(head + smuggled)
    protocol.data_received(HEALTHZ)
    await _settle()
    assert transport.written.count(b"HTTP/1.1 ") == 1
    assert b"connection: close" in transport.written
    assert transport.closed


@pytest.mark.parametrize(
    ("bad", "status"),
    [
        (b"GET /healthz?" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", b"431"),
        (b"NOT HTTP\r\n\r\n", b"400"),
    ],
)
async def test_a_refusal_is_answered_in_its_place_after_the_requests_before_it(
    bad: bytes, status: bytes
) -> None:
    """It had been written at once, before the answers to the requests pipelined ahead of
    it, which the close then cut off: the client took it for the first one's answer."""
    protocol, transport = _connection()
    protocol.data_received(HEALTHZ * 3 + bad + HEALTHZ)
    await _settle()
    statuses = [
        line.split(b" ")[1]
        for line in transport.written.split(b"\r\n")
        if line.startswith(b"HTTP/1.1 ")
    ]
    assert statuses == [b"200", b"200", b"200", status]
    assert transport.closed
