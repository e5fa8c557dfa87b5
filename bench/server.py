"""Server processes under test: start one on a free loopback port, wait until it answers,
sample its memory, and stop it by its own process id."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    """A memory figure of ``/proc/<pid>/status`` in KiB (0 when unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads (0 when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A server process; ``command`` runs with its output in ``log``."""

    name: str
    command: list[str]
    log: Path
    cpus: str | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str] | None = None) -> None:
        command = [*self.command, "--host", "127.0.0.1", "--port", str(self.port)]
        if self.cpus is not None:
            command = ["taskset", "-c", self.cpus, *command]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=REPO,  # where ``python -m bench.ceiling`` finds the bench package
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within 30 s; see {self.log}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class MemorySampler:
    """Samples a process's RSS every ``interval`` seconds while running."""

    pid: int
    interval: float = 0.5
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemorySampler:
        self.samples.append(rss_kib(self.pid))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(rss_kib(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(rss_kib(self.pid))

    def summary(self) -> dict[str, Any]:
        mib = [s / 1024 for s in self.samples if s]
        if not mib:
            return {}
        step = max(1, len(mib) // 30)  # about 30 points over the run
        return {
            "rss_series_mib": [round(m, 1) for m in mib[::step]] + [round(mib[-1], 1)],
            "rss_start_mib": round(mib[0], 1),
            "rss_end_mib": round(mib[-1], 1),
            "rss_peak_mib": round(max(mib), 1),
            "rss_hwm_mib": round(rss_kib(self.pid, "VmHWM") / 1024, 1),
        }


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]
