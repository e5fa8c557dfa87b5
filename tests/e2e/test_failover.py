"""PostgreSQL failing under load, behind two ``userprops serve`` processes, with clients
that retry under one Idempotency-Key per logical call: a fail-over (the primary killed
with SIGKILL, its synchronous standby promoted) and a frozen server (every process of it
SIGSTOPped, as a partition looks). While no primary answers, writes are answered 503
(50300), never 0, and within db_timeout when the server hangs; the service recovers by
itself; every increase acknowledged is on the database exactly once."""

from __future__ import annotations

import base64
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.pgcluster import Cluster, Databases, freeze, kill, thaw
from tests.support.serverproc import Server

DB_TIMEOUT = 2.0
SLACK = 2.0  # on top of DB_TIMEOUT for a 503 while frozen: scheduling on a shared machine
RECOVERY = 10.0  # seconds after the promotion (or the thaw) by which both servers write
CLIENTS = 4
GUARD = 60.0  # the longest any wait of this test may last
RETRY_PAUSE = 0.05


@dataclass(frozen=True)
class Attempt:
    server: int
    sent: float
    answered: float
    status: int | None  # None: no HTTP answer (connection error)
    code: int | None


def _poll(done: Callable[[], bool], what: str, timeout: float = GUARD) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


class Load:
    """CLIENTS threads, each increasing one counter by 1 per logical call, alternating
    between the servers: a new Idempotency-Key per call, the same key on every retry
    after a 503 or a connection error, until the call is answered 0."""

    def __init__(self, urls: list[str], token: str, euid: int) -> None:
        self.urls = urls
        self.headers = {"authorization": f"Basic {token}"}
        self.body = {"euid": euid, "type": "increase", "properties": {"n": 1}}
        self.attempts: list[Attempt] = []
        self.acknowledged: list[str] = []  # the key of each call answered 0
        self.unanswered: list[str] = []  # calls given up (a test failure)
        self._stop = threading.Event()
        self._give_up = time.monotonic() + 10 * GUARD
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(GUARD)

    def _client(self, index: int) -> None:
        turn = index
        with httpx.Client(timeout=GUARD) as http:
            while not self._stop.is_set():
                key = uuid.uuid4().hex
                while True:
                    server = turn % len(self.urls)
                    turn += 1
                    sent = time.monotonic()
                    status = code = None
                    try:
                        r = http.post(
                            self.urls[server] + "/v1/user/property",
                            json=self.body,
                            headers={**self.headers, "idempotency-key": key},
                        )
                        status, code = r.status_code, r.json().get("code")
                    except httpx.TransportError:
                        pass
                    self.attempts.append(Attempt(server, sent, time.monotonic(), status, code))
                    if code == 0:
                        self.acknowledged.append(key)
                        break
                    if status not in (503, None) or time.monotonic() > self._give_up:
                        self.unanswered.append(key)
                        return
                    time.sleep(RETRY_PAUSE)

    def sent_after(self, t: float, server: int) -> list[Attempt]:
        return [a for a in list(self.attempts) if a.sent >= t and a.server == server]

    def recovered(self, t: float) -> float | None:
        """Seconds from ``t`` until every server had answered 0 to a call sent after
        ``t``; None if one has not yet."""
        firsts = []
        for server in range(len(self.urls)):
            acks = [a.answered for a in self.sent_after(t, server) if a.code == 0]
            if not acks:
                return None
            firsts.append(min(acks) - t)
        return max(firsts)

    def wait_for_acks(self, more: int) -> None:
        target = len(self.acknowledged) + more
        _poll(lambda: len(self.acknowledged) >= target, f"{target} calls were acknowledged")


@contextmanager
def _two_servers(url: str, tmp_path: Path) -> Iterator[tuple[list[str], str, int]]:
    """Two servers on ``url``: their base URLs, the Basic token of the data source the
    first one made, and the EUID of a registered user."""
    env = {
        "USERPROPS_DATABASE": url,
        "USERPROPS_DB_TIMEOUT": str(DB_TIMEOUT),
        "USERPROPS_DB_POOL_SIZE": "4",
        "USERPROPS_LOG_LEVEL": "warning",
    }
    servers = [Server(tmp_path, env=env)]
    try:
        servers.append(Server(tmp_path, env=env))
        key, secret = servers[0].credentials()
        token = base64.b64encode(f"{key}:{secret}".encode()).decode()
        r = httpx.post(
            servers[0].url + "/v1/user/register",
            json={"identity_name": "user_id", "identity_values": ["counter"]},
            headers={"authorization": f"Basic {token}"},
            timeout=GUARD,
        )
        yield [s.url for s in servers], token, r.json()["data"][0]["euid"]
    finally:
        for server in servers:
            server.stop()


def _counter(dsn: str, euid: int) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT value FROM user_values WHERE euid = %s AND name = 'n'", (euid,)
        ).fetchone()
    return int(row[0]) if row else 0


def _answers(attempts: list[Attempt]) -> set[tuple[int | None, int | None]]:
    return {(a.status, a.code) for a in attempts}


def _assert_each_call_applied_once(load: Load, dsn: str, euid: int) -> None:
    """Every call was answered 0 in the end, after only 0s and 503s, and the counter on
    the database at ``dsn`` holds each of them once."""
    assert load.unanswered == []
    assert _answers(load.attempts) <= {(200, 0), (503, 50300)}
    assert len(set(load.acknowledged)) == len(load.acknowledged)
    assert _counter(dsn, euid) == len(load.acknowledged)


@pytest.fixture
def replicated() -> Iterator[tuple[Cluster, Cluster]]:
    """A primary and its synchronous streaming-replication standby."""
    primary = Cluster()
    standby: Cluster | None = None
    try:
        # Given on the command line, so the standby (a copy of the data folder) does not
        # inherit them: once promoted it has no standby of its own to wait for.
        primary.start("synchronous_standby_names=standby", "synchronous_commit=on")
        standby = Cluster(primary=primary)
        standby.start("cluster_name=standby")  # its walreceiver's application_name

        def synchronous() -> bool:
            with psycopg.connect(primary.dsn()) as conn:
                row = conn.execute(
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'"
                ).fetchone()
            return row is not None and row[0] == "sync"

        _poll(synchronous, "the standby is synchronous")
        yield primary, standby
    finally:
        for cluster in (standby, primary):
            if cluster is not None:
                cluster.destroy()


def test_a_failover_under_load_answers_503_recovers_and_keeps_every_acknowledged_write(
    replicated: tuple[Cluster, Cluster], tmp_path: Path
) -> None:
    primary, standby = replicated
    name = Databases(primary.dsn()).create().rpartition("/")[2]
    url = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{name}"
        "?target_session_attrs=read-write"
    )
    with _two_servers(url, tmp_path) as (urls, token, euid), Load(urls, token, euid) as load:
        load.wait_for_acks(20)
        kill(primary)
        killed = time.monotonic()
        # No primary now: the standby refuses read-write sessions. Wait until both
        # servers have answered calls sent since.
        _poll(
            lambda: all(len(load.sent_after(killed, s)) >= 3 for s in range(2)),
            "both servers answered calls sent after the kill",
        )
        promoting = time.monotonic()
        standby.promote()
        promoted = time.monotonic()
        _poll(lambda: load.recovered(promoting) is not None, "both servers write again")
        load.wait_for_acks(20)
    recovery = load.recovered(promoting)
    assert recovery is not None

    while_down = [a for a in load.attempts if a.sent >= killed and a.answered < promoting]
    print(
        f"\nfailover: promotion took {promoted - promoting:.2f} s; both servers wrote again"
        f" {recovery:.2f} s after it began; {len(while_down)} calls answered while no"
        f" primary, {len(load.acknowledged)} acknowledged"
    )
    assert while_down and _answers(while_down) == {(503, 50300)}
    assert recovery <= RECOVERY
    _assert_each_call_applied_once(load, standby.dsn(name), euid)


def test_a_frozen_server_under_load_is_answered_503_within_db_timeout_and_loses_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = Databases(cluster.dsn()).create()
    with _two_servers(url, tmp_path) as (urls, token, euid), Load(urls, token, euid) as load:
        load.wait_for_acks(20)
        pids = freeze(cluster)
        try:
            frozen = time.monotonic()
            # Long enough that calls sent after the freeze hit every kind of wait: a
            # batch on a connection, a pooled connection, a new connection, auth.
            _poll(
                lambda: all(len(load.sent_after(frozen, s)) >= 6 for s in range(2)),
                "both servers answered calls sent after the freeze",
            )
        finally:
            thawing = time.monotonic()
            thaw(pids)
        _poll(lambda: load.recovered(thawing) is not None, "both servers write again")
        load.wait_for_acks(20)
    recovery = load.recovered(thawing)
    assert recovery is not None

    while_frozen = [a for a in load.attempts if frozen < a.answered < thawing]
    sent_frozen = [a for a in while_frozen if a.sent >= frozen]
    latencies = [a.answered - a.sent for a in while_frozen]
    print(
        f"\nfrozen {thawing - frozen:.1f} s: {len(while_frozen)} calls answered meanwhile,"
        f" latency median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s"
        f" (db_timeout {DB_TIMEOUT:g} s); both servers wrote again {recovery:.2f} s after"
        f" the thaw; {len(load.acknowledged)} acknowledged"
    )
    assert sent_frozen and _answers(sent_frozen) == {(503, 50300)}
    assert max(latencies) <= DB_TIMEOUT + SLACK
    assert recovery <= RECOVERY
    _assert_each_call_applied_once(load, url, euid)
