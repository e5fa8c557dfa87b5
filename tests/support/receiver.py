"""A real HTTP receiver of webhooks on 127.0.0.1, for the tests: it records every request,
verifies its signature with the ``standardwebhooks`` package, and answers as it is told
(2xx, an error, 429 with ``Retry-After``, or no answer for a while); it can be stopped
and started again on the same port, as an endpoint that goes down and comes back."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import standardwebhooks

WAIT_SECONDS = 60.0  # the most any test waits for a condition: generous, never asserted


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int = 0  # the status it was answered with

    @property
    def payload(self) -> Any:
        return json.loads(self.body)

    @property
    def change(self) -> dict[str, Any]:
        return self.payload["data"]  # type: ignore[no-any-return]

    @property
    def key(self) -> tuple[int, int]:
        """(euid, seq) of the change."""
        return self.change["euid"], self.change["seq"]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0  # seconds before answering (the deliverer's timeout cuts it short)


Rule = Callable[[Received], Answer]


class Receiver:
    """Answers with ``rule`` (default: 200); ``secret`` is the endpoint's, set once it is
    created, to verify signatures."""

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.rule: Rule = lambda _: Answer()
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                got = Received({k.lower(): v for k, v in self.headers.items()}, body, False)
                got.verified = receiver.verify(got)
                with receiver._lock:
                    receiver.requests.append(got)
                answer = receiver.rule(got)
                if answer.hang:
                    receiver._released.wait(answer.hang)
                got.answered = answer.status
                body = b"" if answer.status in (204, 304) else b"ok"
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._released.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def release(self) -> None:
        """Answer every request held by a ``hang`` now (and later ones at once)."""
        self._released.set()

    def stop(self) -> None:
        """Down: connections to the port are refused until :meth:`start` again."""
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def verify(self, got: Received) -> bool:
        if self.secret is None:
            return False
        try:
            standardwebhooks.Webhook(self.secret).verify(got.body, got.headers)
        except standardwebhooks.webhooks.WebhookVerificationError:
            return False
        return True

    def taken(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def delivered(self) -> list[Received]:
        """The requests it answered 2xx, in the order they arrived."""
        return [r for r in self.taken() if 200 <= r.answered < 300]

    def wait_for(
        self, condition: Callable[[list[Received]], bool], what: str, timeout: float = WAIT_SECONDS
    ) -> list[Received]:
        """The requests once ``condition`` holds of them; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            taken = self.taken()
            if condition(taken):
                return taken
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; received {len(self.taken())}")


@contextmanager
def receiving(secret: str | None = None) -> Iterator[Receiver]:
    receiver = Receiver(secret)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
