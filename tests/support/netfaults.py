"""Faults between the client and a server, on 127.0.0.1:

- :class:`DropProxy` forwards connections to a real server and loses the first answers
  (the server has applied the request; the client sees the connection close);
- :class:`Stub` answers from a script, for the retry schedule's unit tests only.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GUARD = 30.0  # only against hanging


class DropProxy:
    """A TCP proxy to ``target_port`` that drops the first ``drop`` answers: it forwards
    the request, waits for the server's first bytes, then closes both connections."""

    def __init__(self, target_port: int, drop: int = 1) -> None:
        self.target_port = target_port
        self.drop = drop
        self.requests: list[bytes] = []  # what each client connection sent
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._start(self._accept)

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                downstream, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port), GUARD)
                downstream.settimeout(GUARD)
                with self._lock:
                    index = len(self.requests)
                    self.requests.append(b"")
                self._start(self._upward, downstream, upstream, index)
                self._start(self._downward, upstream, downstream)

    def _upward(self, downstream: socket.socket, upstream: socket.socket, index: int) -> None:
        with suppress(OSError):
            while chunk := downstream.recv(65536):
                with self._lock:
                    self.requests[index] += chunk
                upstream.sendall(chunk)
        with suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)  # the client is done: let the server close

    def _downward(self, upstream: socket.socket, downstream: socket.socket) -> None:
        with suppress(OSError):
            while chunk := upstream.recv(65536):
                with self._lock:
                    dropping = self.drop > 0
                    self.drop -= dropping
                if dropping:
                    break
                downstream.sendall(chunk)
        for sock in (downstream, upstream):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def header_values(self, name: str) -> list[str]:
        """The values of header ``name`` in the requests that went through, in order."""
        prefix = name.lower().encode() + b":"
        return [
            line.split(b":", 1)[1].strip().decode()
            for request in self.requests
            for line in request.split(b"\r\n")
            if line.lower().startswith(prefix)
        ]

    def close(self) -> None:
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        for thread in self._threads:
            thread.join(GUARD)


@dataclass
class Answer:
    status: int = 200
    body: object = field(default_factory=lambda: {"code": 0, "message": "success"})
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until the stub closes): the client's read times out


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


class Stub:
    """An HTTP server that answers requests with ``script`` in order (the last answer
    repeats) and records what it was sent."""

    def __init__(self, script: list[Answer]) -> None:
        self.script = script
        self.seen: list[Seen] = []
        self.release = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    stub.seen.append(Seen(self.command, self.path, headers, body, time.monotonic()))
                    answer = stub.script[min(len(stub.seen), len(stub.script)) - 1]
                if answer.hang:
                    stub.release.wait(GUARD)
                    self.close_connection = True
                    return
                raw = (
                    answer.body
                    if isinstance(answer.body, bytes)
                    else json.dumps(answer.body).encode()
                )
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _answer

        lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(GUARD)


@contextmanager
def stub(*script: Answer) -> Iterator[Stub]:
    running = Stub(list(script))
    try:
        yield running
    finally:
        running.close()


@contextmanager
def drop_proxy(target_port: int, drop: int = 1) -> Iterator[DropProxy]:
    proxy = DropProxy(target_port, drop)
    try:
        yield proxy
    finally:
        proxy.close()
