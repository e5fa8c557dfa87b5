"""Webhook delivery (docs/history-and-webhooks.md): a :class:`Deliverer` in each server
process, or in ``userprops deliver``, turns committed changes into signed POSTs.

The outbox is the database (tables ``webhooks`` and ``deliveries``), and every write of
the deliverer is a job of the group-commit :class:`~userprops.writer.Writer`, so a
crash loses nothing and any number of processes share the work:

1. it reads what there is to do (:meth:`~userprops.storage.base.Transaction.
   delivery_work`), writing nothing: an idle deliverer costs one read per poll interval;
2. when an endpoint is behind its project's feed or a delivery is due, one writer job
   fans the new changes out into deliveries and claims the due ones (on PostgreSQL with
   ``FOR UPDATE SKIP LOCKED``: each delivery goes to one process), each with a lease;
3. each claimed delivery is POSTed by a task of its own, so a slow or failing user never
   holds up another, up to ``concurrency`` at once per endpoint (four times as many
   claimed, so that one writer job brings the work of several waves);
4. outcomes are recorded in batches, one writer job each: delivered, retried on the
   schedule, or dead; an endpoint that keeps failing is disabled.

A delivery whose process dies mid-attempt is claimed again when its lease runs out
(five times ``timeout``, and 5 s): at-least-once, with the same ``webhook-id``. The loop wakes
when changes are committed (:meth:`Deliverer.wake`), when outcomes are recorded, when
the earliest retry comes due, and at least every ``poll_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import ssl
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import NamedTuple

from userprops import clock, webhooks
from userprops.config import Settings
from userprops.errors import UserpropsError
from userprops.storage.base import (
    DeliveryWork,
    DueDelivery,
    FanOut,
    Outcome,
    OutcomeKind,
    Transaction,
)
from userprops.webhook_http import Poster, PostError
from userprops.writer import Writer

DEFAULT_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
FAN_OUT_BATCH = 1000  # changes read per endpoint and writer job
# Deliveries claimed per endpoint and process, in flight or waiting for a slot: four times
# the concurrency, so that one claim (a writer job: on a busy PostgreSQL, tens of ms)
# brings the work of several waves of attempts.
CLAIMS_PER_SLOT = 4
LEASE_MARGIN = 5.0  # seconds a claim outlives its worst wait and attempt (see _cycle)
POLL_INTERVAL = 1.0
STOP_GRACE = 2.0  # seconds attempts in flight get to finish when the deliverer stops
MAX_ERROR_LENGTH = 300
log = logging.getLogger("userprops.deliverer")


def parse_schedule(text: str) -> tuple[float, ...]:
    """``"5,300,1800"``: the seconds before each retry; "" retries nothing."""
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        delays = (-1.0,)
    if any(d < 0 for d in delays):
        raise ValueError(
            f"USERPROPS_WEBHOOK_RETRY_SCHEDULE: seconds separated by commas, got {text!r}"
        )
    return delays


def parse_retry_after(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` header in seconds: delay-seconds or an HTTP date (``now`` is
    epoch seconds); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class Policy:
    """How deliveries are made: the settings ``webhook_*`` (docs/configuration.md)."""

    timeout: float = 10.0
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    disable_after: float = 432000.0
    disable_failures: int = 10
    concurrency: int = 32
    poll_interval: float = POLL_INTERVAL

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            timeout=settings.webhook_timeout,
            schedule=parse_schedule(settings.webhook_retry_schedule),
            disable_after=settings.webhook_disable_after,
            disable_failures=settings.webhook_disable_failures,
            concurrency=max(1, settings.webhook_concurrency),
        )

    def retry_delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds from the failure of attempt number ``attempt`` to the next; None when
        the schedule is spent (the delivery is dead). A ``Retry-After`` the endpoint
        answered lengthens the delay, up to the schedule's longest."""
        if attempt > len(self.schedule):
            return None
        delay = self.schedule[attempt - 1]
        if retry_after is not None:
            delay = max(delay, min(retry_after, max(self.schedule)))
        return delay

    def should_disable(self, failing_since: int | None, failures: int, now: int) -> bool:
        """Every attempt failed for ``disable_after`` seconds, and enough of them."""
        return (
            failing_since is not None
            and now - failing_since >= self.disable_after * 1000
            and failures >= self.disable_failures
        )


class Cycle(NamedTuple):
    fanned: FanOut | None
    due: list[DueDelivery]


def _cycle(policy: Policy, wanted: dict[int, int], fan: bool, tx: Transaction) -> Cycle:
    """The writer job that fans out new changes (when ``fan``) and claims what is due.
    A claim is leased for long enough for its attempt and the waves of attempts ahead
    of it at its endpoint (:data:`CLAIMS_PER_SLOT` - 1 of ``concurrency`` each), each at
    most ``timeout``, and a margin."""
    now = clock.now_ms()
    fanned = tx.fan_out(now, FAN_OUT_BATCH) if fan else None
    lease = now + round((CLAIMS_PER_SLOT * policy.timeout + LEASE_MARGIN) * 1000)
    return Cycle(fanned, tx.claim_deliveries(now, lease, wanted))


def _record(policy: Policy, outcomes: list[Outcome], tx: Transaction) -> list[tuple[int, str]]:
    """The writer job that records outcomes; returns the endpoints it disabled, and why."""
    now = clock.now_ms()
    disabled = []
    for wid, health in tx.record_outcomes(outcomes, now).items():
        if health.enabled and policy.should_disable(health.failing_since, health.failures, now):
            assert health.failing_since is not None
            reason = (
                f"failing since {webhooks.iso(health.failing_since)}"
                f" ({health.failures} attempts failed in a row)"
            )
            tx.set_webhook_enabled(wid, False, reason, now)
            disabled.append((wid, reason))
    return disabled


class Deliverer:
    """Delivers webhooks from a thread of its own, with its own event loop, through
    ``writer``; :meth:`start` and :meth:`stop` it with the writer running.
    ``ssl_context`` verifies https endpoints (default: the system's trust store)."""

    def __init__(
        self, writer: Writer, policy: Policy, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._writer = writer
        self.policy = policy
        self._ssl_context = ssl_context
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._wake_pending = False
        self._projects: frozenset[int] | None = None  # with an enabled endpoint; None: all
        self._endpoints: frozenset[int] = frozenset()  # enabled, as last read
        self._read_at = 0.0  # when they were read (monotonic)
        self._eager = False  # the last cycle found work: another, without reading first
        self._busy: dict[int, int] = {}  # endpoint -> claimed attempts not yet made
        self._gates: dict[int, asyncio.Semaphore] = {}  # endpoint -> its attempts in flight
        self._sending: set[asyncio.Task[None]] = set()
        self._outcomes: list[Outcome] = []

    # Running

    def start(self) -> None:
        ready = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main(ready)), name="userprops-deliverer", daemon=True
        )
        self._thread.start()
        ready.wait()

    def stop(self) -> None:
        """Let attempts in flight finish for a moment (the others are released for a
        later attempt), record every outcome, then stop; the writer must still run."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            with suppress(RuntimeError):  # the loop is gone already
                loop.call_soon_threadsafe(self._halt)
            thread.join()
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self, project_id: int) -> None:
        """Changes of ``project_id`` were committed (from any thread)."""
        projects = self._projects
        if projects is not None and project_id not in projects:
            return
        loop = self._loop
        if loop is None or self._wake_pending:
            return
        self._wake_pending = True
        try:
            loop.call_soon_threadsafe(self._woke)
        except RuntimeError:  # the loop is closed: stopped
            self._wake_pending = False

    def _woke(self) -> None:
        self._wake_pending = False
        self._woken.set()

    def _halt(self) -> None:
        self._stopping = True
        self._woken.set()

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._woken = asyncio.Event()
        self._outcome_ready = asyncio.Event()
        ready.set()
        self._poster = Poster(self._ssl_context)
        recorder = asyncio.create_task(self._record_loop())
        try:
            while not self._stopping:
                self._woken.clear()
                try:
                    wait = await self._step()
                except UserpropsError as exc:  # the database is away: try again later
                    log.warning("webhook delivery paused: %s", exc.detail)
                    wait = self.policy.poll_interval
                except Exception:  # never let the loop die: deliveries would stop
                    log.exception("webhook delivery step failed")
                    wait = self.policy.poll_interval
                if wait > 0 and not self._stopping:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._woken.wait(), wait)
        finally:
            await self._drain(recorder)
            await self._poster.aclose()
        self._loop = None

    async def _step(self) -> float:
        """One look at the work: fan out and claim when there is something to do, start
        the attempts; how long to sleep before the next look (0: at once). After a
        cycle that found work, the next one goes without reading first, as long as the
        last read is recent."""
        now = clock.now_ms()
        eager = self._eager and time.monotonic() - self._read_at < self.policy.poll_interval
        self._eager = fan = False
        if eager:
            fan = True
        else:
            work = await asyncio.to_thread(self._work, now)
            self._read_at = time.monotonic()
            self._projects, self._endpoints = work.projects, frozenset(work.next_due)
            due = [w for w, at in work.next_due.items() if at is not None and at <= now]
            if not work.behind and not any(self._room(w) for w in due):
                return self._until_due(work, now)
            fan = work.behind
        wanted = {wid: self._room(wid) for wid in self._endpoints}
        cycle = await self._writer.submit(functools.partial(_cycle, self.policy, wanted, fan))
        for delivery in cycle.due:
            self._busy[delivery.webhook_id] = self._busy.get(delivery.webhook_id, 0) + 1
            task = asyncio.create_task(self._send(delivery))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        fanned = cycle.fanned
        self._eager = bool(cycle.due) or (
            fanned is not None and (fanned.deliveries > 0 or fanned.more)
        )
        if self._eager and not any(self._room(w) for w in self._endpoints):
            return self.policy.poll_interval  # until an attempt ends and makes room
        if self._eager or eager:
            return 0.0
        return self.policy.poll_interval  # there seemed to be work: another process has it

    def _room(self, webhook_id: int) -> int:
        """How many more deliveries of the endpoint this process may claim."""
        return max(0, CLAIMS_PER_SLOT * self.policy.concurrency - self._busy.get(webhook_id, 0))

    def _work(self, now: int) -> DeliveryWork:
        with self._writer.storage.read() as tx:
            return tx.delivery_work(now)

    def _until_due(self, work: DeliveryWork, now: int) -> float:
        """Seconds until the earliest retry an endpoint with room for it has, at most
        the poll interval."""
        later = [
            at
            for wid, at in work.next_due.items()
            if at is not None and at > now and self._room(wid)
        ]
        wait = self.policy.poll_interval
        if later:
            wait = min(wait, (min(later) - now) / 1000)
        return max(wait, 0.001)

    # Attempts

    async def _send(self, due: DueDelivery) -> None:
        outcome = self._outcome(due, "released")  # if cancelled: another attempt is made
        gate = self._gates.get(due.webhook_id)
        if gate is None:
            gate = self._gates[due.webhook_id] = asyncio.Semaphore(self.policy.concurrency)
        try:
            async with gate:
                outcome = await self._attempt(due)
        except Exception as exc:  # a bug; the delivery is tried again on its schedule
            log.exception("webhook attempt failed")
            outcome = self._failure(due, None, f"internal error: {type(exc).__name__}", None)
        finally:
            # Room for another claim at once; this one's lease holds until recorded.
            left = self._busy.get(due.webhook_id, 1) - 1
            if left > 0:
                self._busy[due.webhook_id] = left
            else:
                self._busy.pop(due.webhook_id, None)
            self._outcomes.append(outcome)
            self._outcome_ready.set()
            self._woken.set()

    async def _attempt(self, due: DueDelivery) -> Outcome:
        if due.change is None:
            return self._outcome(due, "dead", error="the change is no longer in the history")
        body = webhooks.payload(due.change, due.timezone)
        msg_id = webhooks.message_id(due.project_id, due.seq)
        headers = webhooks.headers(due.secret, msg_id, int(time.time()), body)
        try:
            async with asyncio.timeout(self.policy.timeout):
                answer = await self._poster.post(due.url, body, headers)
        except TimeoutError:
            return self._failure(due, None, f"no answer within {self.policy.timeout:g} s", None)
        except PostError as exc:
            return self._failure(due, None, str(exc), None)
        if 200 <= answer.status < 300:
            return self._outcome(due, "delivered", status=answer.status)
        after = answer.headers.get(b"retry-after", b"").decode("latin-1") or None
        retry_after = parse_retry_after(after, time.time())
        return self._failure(due, answer.status, f"HTTP {answer.status}", retry_after)

    def _failure(
        self, due: DueDelivery, status: int | None, error: str, retry_after: float | None
    ) -> Outcome:
        """A failed attempt: retried on the schedule, or dead once it is spent."""
        error = error[:MAX_ERROR_LENGTH]
        delay = self.policy.retry_delay(due.attempt, retry_after)
        if delay is None:
            return self._outcome(due, "dead", status=status, error=error)
        next_at = clock.now_ms() + round(delay * 1000)
        return self._outcome(due, "retry", next_at=next_at, status=status, error=error)

    @staticmethod
    def _outcome(
        due: DueDelivery,
        kind: OutcomeKind,
        *,
        next_at: int = 0,
        status: int | None = None,
        error: str | None = None,
    ) -> Outcome:
        return Outcome(due.id, due.webhook_id, due.euid, due.attempt, kind, next_at, status, error)

    # Outcomes

    async def _record_loop(self) -> None:
        while True:
            await self._outcome_ready.wait()
            self._outcome_ready.clear()
            if self._outcomes:
                await self._record_taken()

    async def _record_taken(self) -> None:
        batch, self._outcomes = self._outcomes, []
        try:
            disabled = await self._writer.submit(functools.partial(_record, self.policy, batch))
        except UserpropsError as exc:  # kept, and tried again (their leases still hold)
            log.warning("recording %d webhook outcomes failed: %s", len(batch), exc.detail)
            self._outcomes[:0] = batch
            await asyncio.sleep(self.policy.poll_interval)
            self._outcome_ready.set()
            return
        for wid, reason in disabled:
            log.warning("webhook endpoint %d disabled: %s", wid, reason)
        self._woken.set()

    async def _drain(self, recorder: asyncio.Task[None]) -> None:
        """On stop: attempts in flight get :data:`STOP_GRACE` seconds, the rest are
        released; every outcome is recorded."""
        if self._sending:
            _, late = await asyncio.wait(set(self._sending), timeout=STOP_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        recorder.cancel()
        with suppress(asyncio.CancelledError):
            await recorder
        if self._outcomes:
            try:
                await self._writer.submit(functools.partial(_record, self.policy, self._outcomes))
            except UserpropsError as exc:  # their leases run out: tried again later
                log.warning("webhook outcomes not recorded at stop: %s", exc.detail)
            self._outcomes = []
