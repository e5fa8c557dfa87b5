"""The ASGI application: routing, body reading with limits, and the envelope on every
path. Plain ASGI, so the hot path pays for nothing it does not use.

Order of checks (docs/errors.md): unknown path (404) and wrong method (405) regardless of
credentials; headers too large (431); body too large (413) or too slow (408); then the
handler, which authenticates first. A path that is no API route and is ``/admin`` or
below it goes to the admin console (:mod:`userprops.console`), whose answers are HTML.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from userprops import idempotency, segments
from userprops.auth import Authenticator
from userprops.config import Settings
from userprops.console.app import Console, mounted
from userprops.deliverer import Deliverer, Policy
from userprops.engine import Engine
from userprops.errors import (
    HeadersTooLarge,
    InternalError,
    MethodNotAllowed,
    PathNotFound,
    PayloadTooLarge,
    RequestTimeout,
    UserpropsError,
)
from userprops.http.deadlines import BodyDeadlines
from userprops.http.metrics import Metrics
from userprops.http.responses import (
    SUCCESS,
    SUCCESS_BODY,
    SUCCESS_START,
    Response,
    error_response,
    send,
)
from userprops.http.routes import ROUTES, Request, Route, Services
from userprops.ratelimit import RateLimits
from userprops.reader import Reader
from userprops.retention import Sweeper, retention_sweep
from userprops.storage import Storage, open_storage
from userprops.writer import Writer

log = logging.getLogger("userprops")

# How much of an oversized body is read and dropped so the client can read the 413.
DRAIN_FACTOR = 16
SEGMENT_SWEEP_FIRST = 10.0  # seconds after start: resume builds a stop left unfinished


class _ClientGone(Exception):
    pass


class App:
    """``App(settings)`` is an ASGI application; storage opens on lifespan startup, or
    explicitly with :meth:`start` (tests) and closes with :meth:`stop`."""

    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        self.settings = settings
        self._given_storage = storage
        self.services: Services | None = None
        self.writer: Writer | None = None
        self.reader: Reader | None = None
        self.sweeper: Sweeper | None = None
        self.deliverer: Deliverer | None = None
        self.segment_sweeper: Sweeper | None = None
        self.metrics = Metrics()
        self.idempotency = idempotency.Policy(settings.idempotency_ttl)
        self.rate_limits = RateLimits(
            auth_fail_rate=settings.auth_fail_rate,
            auth_fail_burst=settings.auth_fail_burst,
            request_rate=settings.rate_limit,
            request_burst=settings.rate_burst,
        )
        self._deadlines = BodyDeadlines(settings.body_timeout)
        self._max_header_bytes = settings.max_header_bytes
        self._max_body_bytes = settings.max_body_bytes
        self.console = Console(settings) if settings.console else None

    def start(self) -> None:
        storage = self._given_storage or open_storage(
            self.settings.database,
            timeout=self.settings.db_timeout,
            pool_size=self.settings.db_pool_size,
        )
        storage.migrate()
        self.writer = Writer(storage, batch_max=self.settings.batch_max)
        self.writer.start()
        self.reader = Reader(storage, batch_max=self.settings.batch_max)
        self.reader.start()
        limits = self.settings.limits
        engine = Engine(self.writer, self.reader, limits, history=self.settings.history)
        storage.watch_changes(engine.commits.announce)
        self.services = Services(
            engine=engine,
            auth=Authenticator(storage, self.settings.auth_cache_ttl, self.rate_limits),
            storage=storage,
            limits=limits,
            writer=self.writer,
            reader=self.reader,
            metrics=self.metrics,
        )
        self.sweeper = Sweeper(
            self.writer,
            self.settings.event_sweep_interval,
            sweep=retention_sweep(self.settings.webhook_retention),
        )
        self.sweeper.start()
        if self.settings.deliveries:
            self.deliverer = Deliverer(self.writer, Policy.from_settings(self.settings))
            engine.commits.subscribe(self.deliverer.wake)
            self.deliverer.start()
        if self.console is not None:
            self.console.start(storage)
        # Conditions relative to now checked again, and builds a stop left unfinished
        # resumed: soon after start, then every interval (docs/segments.md).
        self.segment_sweeper = Sweeper(
            self.writer,
            self.settings.segment_sweep_interval,
            sweep=functools.partial(segments.sweep, record=self.settings.history),
            name="userprops-segment-sweeper",
            what="segment sweep",
            first=min(self.settings.segment_sweep_interval, SEGMENT_SWEEP_FIRST),
        )
        self.segment_sweeper.start()

    def stop(self) -> None:
        if self.console is not None:
            self.console.stop()
        if self.deliverer is not None:
            self.deliverer.stop()
            self.deliverer = None
        for sweeper in (self.sweeper, self.segment_sweeper):
            if sweeper is not None:
                sweeper.stop()
        self.sweeper = self.segment_sweeper = None
        if self.writer is not None:
            self.writer.stop()
            self.writer = None
        if self.reader is not None:
            self.reader.stop()
            self.reader = None
        if self.services is not None:
            if self._given_storage is None:
                self.services.storage.close()
            self.services = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send_: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send_)
            return
        path = scope["path"]
        methods = ROUTES.get(path)
        if methods is None and self.console is not None and mounted(path):
            status = await self.console(scope, receive, send_)
            self.metrics.observe("/admin", scope["method"], status)
            return
        try:
            response = await self._handle(scope, receive, methods)
        except _ClientGone:
            return
        except UserpropsError as error:
            response = error_response(
                error, close=isinstance(error, RequestTimeout | PayloadTooLarge | HeadersTooLarge)
            )
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), path)
            response = error_response(InternalError())
        route = path if methods is not None else "unmatched"
        self.metrics.observe(route, scope["method"], response.status)
        if response is SUCCESS:  # the hot path's answer: its messages are built once
            await send_(SUCCESS_START)
            await send_(SUCCESS_BODY)
        else:
            await send(send_, response)

    async def _lifespan(self, receive: Any, send_: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await asyncio.to_thread(self.start)
                except Exception as exc:
                    log.error("startup failed: %s", exc)
                    await send_({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send_({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.stop)
                await send_({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(
        self, scope: dict[str, Any], receive: Any, methods: dict[str, Route] | None
    ) -> Response:
        if methods is None:
            raise PathNotFound(f"no endpoint {scope['path']!r}")
        route = methods.get(scope["method"])
        if route is None:
            raise MethodNotAllowed(sorted(methods))
        services = self.services
        if services is None:
            raise InternalError("service is not started")
        authorization = None
        length = None
        key = None
        header_bytes = len(scope.get("raw_path") or b"") + len(scope["query_string"])
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                length = value
            elif name == idempotency.HEADER:
                key = value
        if header_bytes > self._max_header_bytes:
            raise HeadersTooLarge(f"request head larger than {self._max_header_bytes} bytes")
        body = await self._read_body(receive, length) if route.reads_body else b""
        client = scope.get("client")
        request = Request(
            scope["method"],
            scope["path"],
            scope["query_string"],
            authorization,
            body,
            client[0] if client else None,
        )
        if key is None or request.method != "POST":
            return await route.handler(services, request)
        with idempotency.claimed(self.idempotency, key, request.method, request.path, body):
            return await route.handler(services, request)

    async def _read_body(self, receive: Any, length: bytes | None) -> bytes:
        limit = self._max_body_bytes
        too_large = length is not None and length.isdigit() and int(length) > limit
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        self._deadlines.start(task, loop)
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    too_large = True
                if not too_large:
                    chunks.append(chunk)
                if not message.get("more_body", False) or size > limit * DRAIN_FACTOR:
                    break
        except asyncio.CancelledError:
            if self._deadlines.finish(task):
                raise RequestTimeout() from None
            raise
        finally:
            self._deadlines.finish(task)
        if too_large:
            raise PayloadTooLarge(f"request body larger than {limit} bytes")
        return b"".join(chunks)
