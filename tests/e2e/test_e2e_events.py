"""End to end with the real server process: contacts and events from a business system,
the CLI beside the running server, and a clean stop with the retention sweeper running."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.support.serverproc import Server, cli


def test_contacts_and_events_against_a_running_server(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'events.db'}"
    server = Server(tmp_path, "--database", db, env={"USERPROPS_EVENT_SWEEP_INTERVAL": "3600"})
    try:
        cli(db, "project", "create", "shop")
        creds = cli(db, "datasource", "create", "crm", "--project", "shop")
        auth = (str(creds["api_key"]), str(creds["api_secret"]))
        cli(db, "event-property", "define", "purchase", "amount", "NUMBER", "--project", "shop")
        cli(db, "project", "set", "shop", "--event-retention-days", "30")

        async def drive() -> list[int]:
            async with httpx.AsyncClient(base_url=server.url, auth=auth, timeout=30) as http:
                r = await http.post(
                    "/v1/user/register",
                    json={"identity_name": "user_id", "identity_values": ["ann", "bob"]},
                )
                euids = [item["euid"] for item in r.json()["data"]]
                claims = await asyncio.gather(
                    *(
                        http.post(
                            "/v1/user/contact",
                            json={"euid": e, "contacts": {"email": "shared@example.com"}},
                        )
                        for e in euids * 10
                    )
                )
                assert {c.json()["code"] for c in claims} == {0, 55014}
                purchase = {
                    "euid": euids[0],
                    "event_name": "purchase",
                    "itime": 4_102_444_800_000,  # 2100: inside any retention
                    "random_id": "order-1",
                    "properties": {"amount": 46.2},
                }
                retries = await asyncio.gather(
                    *(http.post("/v1/event/report", json={"data": [purchase]}) for _ in range(20))
                )
                assert {r.json()["code"] for r in retries} == {0}
                wrong = {**purchase, "random_id": "order-2", "properties": {"amount": "x"}}
                r = await http.post("/v1/event/report", json={"data": [wrong]})
                assert r.json()["code"] == 55102
                return euids

        euids = asyncio.run(drive())
        holders = [e for e in euids if cli(db, "user", "show", str(e))["contacts"]]
        assert len(holders) == 1
        listed = cli(db, "event", "list", str(euids[0]))
        assert [(e["event_name"], e["properties"]) for e in listed["events"]] == [
            ("purchase", {"amount": 46.2})
        ]
    finally:
        server.stop_cleanly()
