"""The benchmark's change scenarios (bench/changes.py) without wrk: the webhook scenario
against a real server at a low rate, the feed consumer, and the report's pieces."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
from bench import changes

from tests.support.liveserver import live_server
from userprops import webhooks


async def test_the_webhook_scenario_sees_every_change_signed(tmp_path: Path) -> None:
    with live_server(tmp_path) as server:
        euids = range(server.register("a"), server.register("b") + 1)
        token = base64.b64encode(f"{server.api_key}:{server.api_secret}".encode()).decode()
        result = await changes.webhook_run(
            server.port, token, euids, server.database, "live", rate=100, seconds=1
        )
    assert (result["writes_ok"], result["write_errors"]) == (100, 0)
    assert result["changes"] == result["received"] == 100
    assert (result["missing"], result["duplicates"], result["bad_signatures"]) == (0, 0, 0)
    assert set(result["delay_ms"]) == {"p50", "p90", "p99", "max"}
    [line] = changes.render("sqlite", {"webhook": result})
    assert line.startswith("sqlite webhook: 100 changes at 100/s")


async def test_the_feed_consumer_reads_up_to_the_last_seq(tmp_path: Path) -> None:
    with live_server(tmp_path) as server:
        euid = server.register("a")
        token = base64.b64encode(f"{server.api_key}:{server.api_secret}".encode()).decode()
        done, final = asyncio.Event(), [5]
        consumer = asyncio.create_task(changes.follow_feed(server.port, token, 0, done, final))
        async with httpx.AsyncClient(base_url=server.url, headers=server.auth_header) as http:
            for n in range(5):
                body = {"euid": euid, "type": "set", "properties": {"n": n}}
                assert (await http.post("/v1/user/property", json=body)).json()["code"] == 0
        done.set()
        followed = await asyncio.wait_for(consumer, 30)
    assert followed["seen"] == 5 and followed["pages"] >= 1


def test_spread_cpu_lists_and_signatures() -> None:
    assert changes.spread([]) == {}
    assert changes.spread([float(n) for n in range(1, 101)]) == {
        "p50": 51.0,
        "p90": 91.0,
        "p99": 100.0,
        "max": 100.0,
    }
    assert changes.cpu_list("1") == {1}
    assert changes.cpu_list("0-1,3") == {0, 1, 3}
    secret = webhooks.new_secret()
    body = b'{"data":{}}'
    sent = webhooks.headers(secret, "msg_1_1", 1_700_000_000, body)
    raw = {k.encode(): v.encode() for k, v in sent.items()}
    assert changes.signed(secret, raw, body)
    assert not changes.signed(secret, raw, body + b" ")


def test_the_change_targets_and_lines_of_a_report() -> None:
    from bench.__main__ import targets

    hook = {
        "changes": 10, "received": 10, "missing": 0, "duplicates": 0, "bad_signatures": 0,
        "write_errors": 0, "rate": 1000.0, "achieved_rate": 999.0,
        "delay_ms": {"p50": 5.0, "p90": 9.0, "p99": 1200.0, "max": 1500.0},
    }  # fmt: skip
    feed = {
        "changes": 100, "seen": 100, "seconds": 1.0, "changes_per_second": 100.0,
        "write_throughput": 50.0, "pages": 3, "catch_up_s": 0.2,
        "delay_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0, "max": 4.0},
    }  # fmt: skip
    met = targets({"sqlite": {"webhook": hook, "feed": feed}})
    assert met == {
        "sqlite_webhook_p99<=1s": False,
        "sqlite_webhook_every_change": True,
        "sqlite_feed_kept_up": True,
    }
    lines = changes.render("sqlite", {"webhook": hook, "feed": feed})
    assert "p99 1200.0 ms" in lines[0]
    assert lines[1].startswith("sqlite feed: 100 changes in 1.0 s")
    assert lines[1].endswith("caught up 0.2 s after the last write")
