"""End to end: the real server process, set up as the README says, driven over a socket."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from tests.support.serverproc import Server, cli


def test_first_start_prints_credentials_that_work(tmp_path: Path) -> None:
    server = Server(tmp_path)
    try:
        auth = server.credentials()
        r = httpx.post(
            server.url + "/v1/user/register",
            json={"identity_name": "user_id", "identity_values": ["u1"]},
            auth=auth,
        )
        euid = r.json()["data"][0]["euid"]
        r = httpx.post(
            server.url + "/v1/user/property",
            json={"euid": euid, "type": "set", "properties": {"plan": "gold"}},
            auth=auth,
        )
        assert r.json() == {"code": 0, "message": "success"}
        r = httpx.get(server.url + f"/v1/user/property?euid={euid}", auth=auth)
        assert r.json()["data"]["properties"] == {"plan": "gold"}
        assert (tmp_path / "userprops.db").exists()
    finally:
        server.stop_cleanly()
    again = Server(tmp_path)
    try:
        assert "api_secret" not in again.output()
    finally:
        again.stop_cleanly()


def test_cli_project_against_a_running_server(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'e2e.db'}"
    server = Server(tmp_path, "--database", db)
    try:
        cli(db, "project", "create", "shop", "--timezone", "Europe/Paris")
        creds = cli(db, "datasource", "create", "crm", "--project", "shop")
        auth = (str(creds["api_key"]), str(creds["api_secret"]))
        cli(db, "attribute", "define", "visits", "NUMBER", "--project", "shop")

        async def drive() -> int:
            async with httpx.AsyncClient(base_url=server.url, auth=auth, timeout=30) as http:
                r = await http.post(
                    "/v1/user/register",
                    json={"identity_name": "user_id", "identity_values": ["bob"]},
                )
                euid: int = r.json()["data"][0]["euid"]
                answers = await asyncio.gather(
                    *(
                        http.post(
                            "/v1/user/property",
                            json={"euid": euid, "type": "increase", "properties": {"visits": 1}},
                        )
                        for _ in range(200)
                    )
                )
                assert all(a.json()["code"] == 0 for a in answers)
                regs = await asyncio.gather(
                    *(
                        http.post(
                            "/v1/user/register",
                            json={"identity_name": "anonymous_id", "identity_values": ["dev-1"]},
                        )
                        for _ in range(50)
                    )
                )
                assert len({r.json()["data"][0]["euid"] for r in regs}) == 1
                await http.post(
                    "/v1/user/property",
                    json={
                        "euid": euid,
                        "type": "set",
                        "properties": {"seen": "2024-05-01 10:00:00"},
                    },
                )
                return euid

        euid = asyncio.run(drive())
        shown = cli(db, "user", "show", str(euid))
        assert shown["properties"] == {"visits": 200, "seen": "2024-05-01T10:00:00+02:00"}
        bad = httpx.post(server.url + "/v1/user/property", content=b"{", auth=auth)
        assert bad.status_code == 400 and bad.json()["code"] == 55004
    finally:
        server.stop_cleanly()


def test_restarts_cleanly_after_sigkill(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'kill.db'}"
    server = Server(tmp_path, "--database", db)
    server.stop(signal.SIGKILL)
    again = Server(tmp_path, "--database", db)
    try:
        assert httpx.get(again.url + "/healthz").json()["code"] == 0
    finally:
        again.stop_cleanly()


def test_a_forwarded_for_header_does_not_escape_the_auth_failure_limit(tmp_path: Path) -> None:
    """The address limited is the TCP peer: uvicorn's proxy headers are off, so a client
    on 127.0.0.1 cannot claim another address with X-Forwarded-For."""
    server = Server(
        tmp_path, env={"USERPROPS_AUTH_FAIL_BURST": "3", "USERPROPS_AUTH_FAIL_RATE": "0.01"}
    )
    try:
        codes = [
            httpx.get(
                server.url + "/v1/user/property?euid=1",
                auth=("nobody", "wrong"),
                headers={"X-Forwarded-For": f"10.0.0.{i}"},
            ).status_code
            for i in range(5)
        ]
    finally:
        server.stop()
    assert codes == [401, 401, 401, 429, 429]
