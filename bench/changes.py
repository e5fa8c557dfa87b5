"""The scenarios of the change feed and webhooks (issue 12), run beside the wrk ones.

- ``webhook``: one webhook endpoint on a receiver in this process; writes paced at a
  fixed rate (1,000 changes a second by default), open loop like wrk2, each an
  ``increase`` that makes exactly one change; reported: how many changes the receiver got
  (each signature checked), and the delay from each change's commit (its ``at``) to its
  arrival, p50 to max.
- ``feed``: wrk's write scenario at full speed while a consumer here follows
  ``GET /v1/changes`` with long polls, 1,000 a page; reported: the changes made and seen,
  each one's delay from commit to being read, and how long the consumer took to catch up
  once the writes stopped.

HTTP here is a few lines over asyncio streams (keep-alive, Content-Length bodies), so
that this process, which shares wrk's CPU, costs the measurement as little as it can.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench import wrk
from bench.setup import cli
from userprops.storage import open_storage

SCENARIOS = ("webhook", "feed")
WEBHOOK_RATE = 1000.0
CONNECTIONS = 128  # writers' connections: enough that the pace holds when answers slow
SETTLE_SECONDS = 60.0  # the most to wait for the last changes to arrive after the writes


def _head(data: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """The first line and the headers (names lowercased) of an HTTP head."""
    lines = data.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:``port``."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.auth = f"Authorization: Basic {token}\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        first, headers = _head(await self._reader.readuntil(b"\r\n\r\n"))
        answer = await self._reader.readexactly(int(headers.get(b"content-length", b"0")))
        return int(first.split(b" ")[1]), answer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


@dataclass
class Receiver:
    """A webhook endpoint on a free port of 127.0.0.1 answering 204 to every POST, and
    noting when each arrived (epoch ms) with its headers and body."""

    arrivals: list[tuple[float, dict[bytes, bytes], bytes]] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                _, headers = _head(await reader.readuntil(b"\r\n\r\n"))
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                self.arrivals.append((time.time() * 1000, headers, body))
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the connection ended, or this loop does
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


def signed(secret: str, headers: dict[bytes, bytes], body: bytes) -> bool:
    """Whether a delivery's ``webhook-signature`` is right for ``secret``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg = headers[b"webhook-id"] + b"." + headers[b"webhook-timestamp"] + b"." + body
    expected = b"v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest())
    return hmac.compare_digest(headers.get(b"webhook-signature", b""), expected)


def spread(values: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max of ``values`` (ms), rounded to 0.1."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1], 1)}


async def paced_writes(
    port: int, token: str, euids: range, rate: float, seconds: float
) -> dict[str, Any]:
    """``rate`` increases a second for ``seconds``, each sent at its time whether or not
    earlier ones were answered (an open loop), over :data:`CONNECTIONS` connections."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    counts = {"ok": 0, "errors": 0}

    async def worker() -> None:
        conn = Connection(port, token)
        try:
            while (i := await queue.get()) is not None:
                euid = euids[i % len(euids)]
                body = b'{"euid":%d,"type":"increase","properties":{"webhook":1}}' % euid
                status, answer = await conn.request("POST", "/v1/user/property", body)
                ok = status == 200 and answer.startswith(b'{"code":0')
                counts["ok" if ok else "errors"] += 1
        finally:
            conn.close()

    workers = [asyncio.create_task(worker()) for _ in range(CONNECTIONS)]
    total = int(rate * seconds)
    started = loop.time()
    for i in range(total):
        delay = started + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(i)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = loop.time() - started
    return {
        "rate": rate,
        "seconds": seconds,
        "writes_sent": total,
        "writes_ok": counts["ok"],
        "write_errors": counts["errors"],
        "achieved_rate": round(counts["ok"] / elapsed, 1),
    }


def last_seq(url: str, slug: str) -> int:
    storage = open_storage(url)
    try:
        with storage.read() as tx:
            project = tx.get_project(slug)
            assert project is not None
            return tx.last_seq(project.id)
    finally:
        storage.close()


async def _until(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def webhook_run(
    port: int, token: str, euids: range, url: str, slug: str, rate: float, seconds: float
) -> dict[str, Any]:
    """The ``webhook`` scenario against the server on ``port`` (database ``url``,
    project ``slug``)."""
    receiver = Receiver()
    await receiver.start()
    endpoint = f"http://127.0.0.1:{receiver.port}/hook"
    made = cli("webhook", "create", endpoint, "--project", slug, "--database", url)
    try:
        before = await _warm_up(receiver, Connection(port, token), euids[0], url, slug)
        result = await paced_writes(port, token, euids, rate, seconds)
        expected = set(range(before + 1, await asyncio.to_thread(last_seq, url, slug) + 1))
        delays: dict[int, float] = {}  # seq -> ms from commit to first arrival
        read = 0

        def complete() -> bool:
            nonlocal read
            for when, _, body in receiver.arrivals[read:]:
                data = json.loads(body)["data"]
                delays.setdefault(data["seq"], when - data["at"])
            read = len(receiver.arrivals)
            return expected <= delays.keys()

        await _until(complete, SETTLE_SECONDS)
    finally:
        await receiver.stop()
        cli("webhook", "delete", str(made["id"]), "--database", url)
    measured = [d for seq, d in delays.items() if seq in expected]
    result.update(
        {
            "changes": len(expected),
            "received": len(expected & delays.keys()),
            "missing": len(expected - delays.keys()),
            "duplicates": len(receiver.arrivals) - len(delays),
            "bad_signatures": sum(
                not signed(made["secret"], h, b) for _, h, b in receiver.arrivals
            ),
            "delay_ms": spread(measured),
            "delay_mean_ms": round(statistics.fmean(measured), 1) if measured else None,
        }
    )
    return result


async def _warm_up(receiver: Receiver, conn: Connection, euid: int, url: str, slug: str) -> int:
    """Write until a change arrives (the server's deliverer knows the endpoint then), let
    stragglers land, forget them; the project's last seq before the measured writes."""
    body = b'{"euid":%d,"type":"increase","properties":{"warm":1}}' % euid
    try:
        while not receiver.arrivals:
            await conn.request("POST", "/v1/user/property", body)
            await _until(lambda: bool(receiver.arrivals), 1.0)
    finally:
        conn.close()
    before = await asyncio.to_thread(last_seq, url, slug)
    await asyncio.sleep(0.5)
    receiver.arrivals.clear()
    return before


async def follow_feed(
    port: int, token: str, after: int, done: asyncio.Event, final: list[int]
) -> dict[str, Any]:
    """Follow the feed from ``after`` until ``done`` is set and the consumer has read up
    to ``final[0]``; each change's delay from commit to being read, and when (monotonic)
    the consumer first held ``final[0]`` (a long poll that then waits for more does not
    count)."""
    conn = Connection(port, token)
    delays: list[float] = []
    reached: list[tuple[float, int]] = []  # (when, last_seq) of each page with changes
    try:
        while not (done.is_set() and final and reached and reached[-1][1] >= final[0]):
            status, answer = await conn.request(
                "GET", f"/v1/changes?after={after}&limit=1000&wait=1"
            )
            now = time.time() * 1000
            if status != 200:
                raise RuntimeError(f"GET /v1/changes answered {status}: {answer[:200]!r}")
            data = json.loads(answer)["data"]
            if data["changes"]:
                delays += [now - c["at"] for c in data["changes"]]
                after = data["last_seq"]
                reached.append((time.monotonic(), after))
    finally:
        conn.close()
    caught_up_at = next(when for when, seq in reached if seq >= final[0])
    return {
        "seen": len(delays),
        "pages": len(reached),
        "delays": delays,
        "caught_up_at": caught_up_at,
    }


def feed_run(
    options: Any, target: Any, url: str, slug: str, binary: str, seconds: float
) -> dict[str, Any]:
    """The ``feed`` scenario: wrk's writes at full speed for ``seconds``, followed."""

    async def run() -> dict[str, Any]:
        before = await asyncio.to_thread(last_seq, url, slug)
        done, final = asyncio.Event(), list[int]()
        consumer = asyncio.create_task(
            follow_feed(target.server.port, target.token, before, done, final)
        )
        lua = wrk.write_script("write", options.workdir)
        span = target.euids
        # stop_at 0: every increase sends 0, which changes nothing, so the verified sums
        # of the write scenario are left alone (sets and adds make the changes here).
        args = [str(span.start), str(span.stop - 1), "0", target.token, target.tag]
        started = time.monotonic()
        load = await asyncio.to_thread(
            wrk.run, binary, target.server.url, lua, args, options.load, seconds
        )
        ended = time.monotonic()
        final.append(await asyncio.to_thread(last_seq, url, slug))
        done.set()
        followed = await asyncio.wait_for(consumer, SETTLE_SECONDS)
        made = final[0] - before
        return {
            "seconds": round(ended - started, 1),
            "write_requests": load["requests"],
            "write_throughput": round(load["requests"] / (ended - started), 1),
            "changes": made,
            "changes_per_second": round(made / (ended - started), 1),
            "seen": followed["seen"],
            "pages": followed["pages"],
            "delay_ms": spread(followed["delays"]),
            "catch_up_s": round(max(0.0, followed["caught_up_at"] - ended), 2),
        }

    return asyncio.run(run())


def run(scenario: str, options: Any, target: Any, url: str) -> dict[str, Any]:
    """One of :data:`SCENARIOS` on the server of ``target``, for the rounds' total time,
    this process on wrk's CPUs (when pinning) meanwhile."""
    seconds = options.load.duration * options.rounds
    everywhere = os.sched_getaffinity(0)
    if options.load.cpus is not None:
        os.sched_setaffinity(0, cpu_list(options.load.cpus))
    try:
        if scenario == "webhook":
            port, token, euids = target.server.port, target.token, target.euids
            rate = options.webhook_rate
            return asyncio.run(webhook_run(port, token, euids, url, target.tag, rate, seconds))
        return feed_run(options, target, url, target.tag, wrk.ensure_wrk(), seconds)
    finally:
        os.sched_setaffinity(0, everywhere)


def cpu_list(text: str) -> set[int]:
    """The CPUs of a taskset list: ``1``, ``0-1``, ``0,2-3``."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def render(key: str, results: dict[str, Any]) -> list[str]:
    """The report's lines of the webhook and feed scenarios of one database."""
    lines = []
    hook = results.get("webhook")
    if hook is not None:
        d = hook["delay_ms"]
        lines.append(
            f"{key} webhook: {hook['changes']:,} changes at {hook['rate']:,.0f}/s"
            f" (sent {hook['achieved_rate']:,.0f}/s, {hook['write_errors']} errors):"
            f" received {hook['received']:,}, missing {hook['missing']},"
            f" duplicates {hook['duplicates']}, bad signatures {hook['bad_signatures']};"
            f" commit to delivery p50 {d.get('p50')} ms, p90 {d.get('p90')} ms,"
            f" p99 {d.get('p99')} ms, max {d.get('max')} ms"
        )
    feed = results.get("feed")
    if feed is not None:
        d = feed["delay_ms"]
        lines.append(
            f"{key} feed: {feed['changes']:,} changes in {feed['seconds']} s"
            f" ({feed['changes_per_second']:,.0f}/s, writes at"
            f" {feed['write_throughput']:,.0f} req/s): the consumer read {feed['seen']:,}"
            f" in {feed['pages']:,} pages, commit to read p50 {d.get('p50')} ms,"
            f" p99 {d.get('p99')} ms, max {d.get('max')} ms;"
            f" caught up {feed['catch_up_s']} s after the last write"
        )
    return lines
