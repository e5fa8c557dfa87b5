"""Webhooks with real processes: the outbox survives a SIGKILL of ``userprops serve``
with deliveries pending and in flight, and ``userprops deliver`` delivers as a process of
its own beside ``serve --no-deliveries``."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.liveserver import Server, live_server
from tests.support.receiver import Answer, Receiver, receiving, wait_until
from tests.support.serverproc import cli

# Failed attempts retried every 0.2 s; an attempt in flight at the kill is claimed again
# once its lease (4 x 1 s timeout + 5 s) has run out.
SETTINGS = {"webhook_retry_schedule": ",".join(["0.2"] * 500), "webhook_timeout": 1.0}


def write(server: Server, euid: int, n: int) -> None:
    body = {"euid": euid, "type": "set", "properties": {"n": n}}
    r = httpx.post(server.url + "/v1/user/property", json=body, headers=server.auth_header)
    assert r.json()["code"] == 0, r.text


def pending(database: str, webhook_id: int) -> list[dict[str, Any]]:
    found = cli(database, "webhook", "deliveries", str(webhook_id), "--status", "pending")
    assert isinstance(found, list)
    return found


def subscribe(database: str, receiver: Receiver) -> int:
    created = cli(database, "webhook", "create", receiver.url, "--project", "live")
    assert isinstance(created, dict)
    receiver.secret = created["secret"]
    return int(created["id"])


def test_pending_deliveries_survive_a_sigkill_of_the_server(
    tmp_path: Path, storage_url: str
) -> None:
    receiver = Receiver()
    receiver.start()
    receiver.stop()  # its port is known; the endpoint is down
    with live_server(tmp_path, storage_url, **SETTINGS) as server:
        webhook_id = subscribe(storage_url, receiver)
        users = [server.register(f"u{i}") for i in range(6)]
        for n in range(5):
            for euid in users:
                write(server, euid, n)

        def every_user_tried() -> bool:
            return sum(1 for d in pending(storage_url, webhook_id) if d["attempts"]) == 6

        wait_until(every_user_tried, "a failed attempt for each user's first change")

        receiver.rule = lambda _: Answer(200, hang=60)  # up, but answering nothing
        receiver.start()
        receiver.wait_for(lambda r: len(r) >= 3, "attempts in flight")
        server.kill()  # with deliveries pending, in flight, and waiting behind them
        assert len(pending(storage_url, webhook_id)) == 30

        receiver.rule = lambda _: Answer(204)
        receiver.release()
        server.start()
        receiver.wait_for(
            lambda _: {r.key[1] for r in receiver.delivered()} == set(range(1, 31)),
            "every change delivered",
        )
    receiver.stop()
    assert all(r.verified for r in receiver.taken())
    first: dict[int, tuple[int, int]] = {}
    for r in receiver.delivered():
        first.setdefault(r.key[1], r.key)
    for euid in users:  # each user's changes, first deliveries in order
        values = [seq for seq, key in sorted(first.items()) if key[0] == euid]
        assert values == sorted(values) and len(values) == 5


def test_deliver_runs_as_a_process_of_its_own(tmp_path: Path, storage_url: str) -> None:
    with (
        receiving() as receiver,
        live_server(tmp_path, storage_url, deliveries="off", **SETTINGS) as server,
    ):
        subscribe(storage_url, receiver)
        [euid] = [server.register("alice")]
        write(server, euid, 1)
        env = {**server.env, "USERPROPS_DATABASE": storage_url, "USERPROPS_LOG_LEVEL": "warning"}
        log = (tmp_path / "deliver.log").open("wb")
        deliver = subprocess.Popen(
            [sys.executable, "-m", "userprops", "deliver"], env=env, stdout=log, stderr=log
        )
        try:
            receiver.wait_for(lambda r: len(r) == 1, "the change from before it started")
            write(server, euid, 2)
            got = receiver.wait_for(lambda r: len(r) == 2, "the change after")
        finally:
            deliver.send_signal(signal.SIGTERM)
            code = deliver.wait(timeout=30)
            log.close()
    output = (tmp_path / "deliver.log").read_text()
    assert code == 0, output
    assert "userprops delivering webhooks of" in output and output.endswith("stopped\n")
    assert [r.change["new"] for r in got] == [1, 2] and all(r.verified for r in got)
