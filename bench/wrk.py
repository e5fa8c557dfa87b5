"""Running wrk: install it if missing, build the Lua script of a scenario, and read the
JSON summary its ``done()`` prints."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import click

MARKER = "BENCH_RESULT "
SCENARIOS = ("write", "register", "read", "batch")


def ensure_wrk() -> str:
    """The path of wrk, installed from the distribution's packages when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        raise SystemExit("wrk is not installed and apt-get is not available; install wrk")
    click.echo("installing wrk with apt-get ...", err=True)
    if subprocess.run([apt, "install", "-y", "-q", "wrk"], capture_output=True).returncode:
        subprocess.run([apt, "update", "-q"], check=True, capture_output=True)
        subprocess.run([apt, "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("apt-get did not install wrk")
    return found


def write_script(scenario: str, folder: Path) -> Path:
    """The scenario's Lua file, prefixed by the shared counters and summary."""
    lua = resources.files("bench") / "lua"
    text = (lua / "common.lua").read_text() + (lua / f"{scenario}.lua").read_text()
    path = folder / f"{scenario}.lua"
    path.write_text(text)
    return path


@dataclass(frozen=True)
class Load:
    """How hard and how long wrk drives a server."""

    connections: int = 64
    threads: int = 1
    duration: float = 10.0
    timeout: float = 5.0
    cpus: str | None = None  # taskset CPU list for wrk


def run(
    wrk: str, url: str, script: Path, args: list[str], load: Load, seconds: float
) -> dict[str, Any]:
    """Run wrk for ``seconds`` and return the summary of ``done()``."""
    command = [
        wrk,
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={load.timeout:g}s",
        "-s",
        str(script),
        url,
        "--",
        *args,
    ]
    if load.cpus is not None:
        command = ["taskset", "-c", load.cpus, *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_summary(done.stdout)


def parse_summary(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith(MARKER):
            summary: dict[str, Any] = json.loads(line.removeprefix(MARKER))
            return summary
    raise RuntimeError(f"wrk printed no summary:\n{output}")
