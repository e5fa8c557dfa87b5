"""A real ``userprops serve`` subprocess on 127.0.0.1, for what only a socket shows:
slow or oversized bodies, huge headers, and SIGKILL in the middle of writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.api import basic_auth
from tests.support.serverproc import cli, free_port

STARTUP_SECONDS = 20.0


@dataclass
class Server:
    database: str
    port: int
    api_key: str
    api_secret: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_header(self) -> dict[str, str]:
        return basic_auth(self.api_key, self.api_secret)

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "userprops",
                    "serve",
                    "--database",
                    self.database,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None

    def register(self, value: str) -> int:
        body = {"identity_name": "user_id", "identity_values": [value]}
        r = httpx.post(self.url + "/v1/user/register", json=body, headers=self.auth_header)
        return int(r.json()["data"][0]["euid"])

    def props(self, euid: int) -> dict[str, object]:
        r = httpx.get(
            self.url + "/v1/user/property", params={"euid": euid}, headers=self.auth_header
        )
        assert r.json()["code"] == 0, r.text
        return r.json()["data"]["properties"]  # type: ignore[no-any-return]


@contextmanager
def live_server(
    tmp_path: Path, database: str | None = None, **settings: object
) -> Iterator[Server]:
    """A server on ``database`` (default: a fresh SQLite file in ``tmp_path``) with one
    project and data source made with the CLI; ``settings`` become ``USERPROPS_*``
    variables."""
    database = database or f"sqlite:///{tmp_path / 'live.db'}"
    cli(database, "project", "create", "live")
    creds = cli(database, "datasource", "create", "load", "--project", "live")
    assert isinstance(creds, dict)
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERPROPS_")}
    env.update({f"USERPROPS_{k.upper()}": str(v) for k, v in settings.items()})
    server = Server(
        database, free_port(), creds["api_key"], creds["api_secret"], env, tmp_path / "server.log"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
