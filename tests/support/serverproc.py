"""Run a real ``userprops serve`` process for end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(database: str, *args: str, cwd: Path | None = None) -> dict[str, Any]:
    """Run a CLI command with ``--json`` in a child process and return its document."""
    out = subprocess.run(
        [sys.executable, "-m", "userprops", *args, "--database", database, "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        timeout=60,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


class Server:
    """``userprops serve`` on a free port of 127.0.0.1, in ``cwd``."""

    def __init__(self, cwd: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"server-{self.port}.log"
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "userprops", "serve", "--port", str(self.port), *extra],
            cwd=cwd,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready: {self.log.read_text()}")

    def output(self) -> str:
        return self.log.read_text()

    def credentials(self) -> tuple[str, str]:
        """The api_key and api_secret printed on first start of an empty database."""
        out = self.output()
        key = re.search(r"api_key:\s+([0-9a-f]{24})", out)
        secret = re.search(r"api_secret:\s+([0-9a-f]{24})", out)
        assert key and secret, out
        return key[1], secret[1]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the process and wait; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self._out.close()
        return code

    def stop_cleanly(self) -> None:
        """SIGTERM: in-flight work finishes, then the process exits by the signal, as
        uvicorn does (status 143 in a shell)."""
        assert self.stop() == -signal.SIGTERM
        assert "Application shutdown complete" in self.output(), self.output()
