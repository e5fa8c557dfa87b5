"""One benchmark run: the ceiling, then each backend's scenarios, then the report."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from userprops.bench import wrk
from userprops.bench.preload import preload
from userprops.bench.server import MemorySampler, Server, python_command, rss_kib
from userprops.bench.setup import create_tenant, register_users, stored_sums
from userprops.storage import open_storage, sqlite_path

# Increases send +1 until this many seconds before the end of a run, then 0, so nothing
# still in flight when wrk stops can change the verified sum.
DRAIN_SECONDS = 1.5


@dataclass
class Options:
    load: wrk.Load
    warmup: float = 2.0
    users: int = 10_000
    preload: int = 0
    database: str | None = None
    server_cpus: str | None = None
    scenarios: tuple[str, ...] = ("write", "register", "read")
    profile: Path | None = None  # folder for py-spy profiles of the measured runs
    profile_format: str = "svg"  # svg (flame graph) or txt (collapsed stacks)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="userprops-bench-")))


def measure(
    options: Options,
    server: Server,
    scenario: str,
    lua: Path,
    euids: range,
    token: str,
    tag: str,
    *,
    warmup: bool = True,
) -> dict[str, Any]:
    """Warm up, then run wrk once while sampling the server's memory; derived figures
    (throughput, errors) are added to wrk's summary."""
    binary = wrk.ensure_wrk()

    def args(seconds: float) -> list[str]:
        stop_at = int(time.time() + seconds - DRAIN_SECONDS)
        return [str(euids.start), str(euids.stop - 1), str(stop_at), token, tag]

    units = 0
    if warmup and options.warmup > 0:
        seconds = options.warmup
        units += wrk.run(binary, server.url, lua, args(seconds), options.load, seconds)[
            "increase_units"
        ]
    seconds = options.load.duration
    with MemorySampler(server.pid) as memory, profiled(options, server, scenario) as path:
        result = wrk.run(binary, server.url, lua, args(seconds), options.load, seconds)
    if path is not None:
        result["profile"] = str(path)
    result["increase_units_total"] = units + result["increase_units"]
    seconds_run = result["duration_us"] / 1e6
    result["throughput"] = round(result["requests"] / seconds_run, 1)
    result["socket_errors"] = sum(
        result[f"errors_{k}"] for k in ("connect", "read", "write", "timeout")
    )
    result["errors"] = result["socket_errors"] + result["errors_status"] + result["bad"]
    result.update(memory.summary())
    result["scenario"] = scenario
    return result


@contextmanager
def profiled(options: Options, server: Server, scenario: str) -> Iterator[Path | None]:
    """py-spy recording the server (every thread) while the block runs."""
    if options.profile is None:
        yield None
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    options.profile.mkdir(parents=True, exist_ok=True)
    path = options.profile / f"{server.name}-{scenario}.{options.profile_format}"
    command = [spy, "record", "--pid", str(server.pid), "--threads", "--rate", "250"]
    command += ["--format", "raw" if options.profile_format == "txt" else "flamegraph"]
    spying = subprocess.Popen(
        [*command, "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield path
    finally:
        spying.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        spying.wait(timeout=60)


def ceiling(options: Options) -> dict[str, Any]:
    server = Server(
        "ceiling",
        python_command("-m", "userprops.bench.ceiling"),
        options.workdir / "ceiling.log",
        cpus=options.server_cpus,
    )
    lua = wrk.write_script("write", options.workdir)
    server.start()
    try:
        return measure(options, server, "ceiling", lua, range(1, 10_001), "eDp5", "ceiling")
    finally:
        server.stop()


def backend(
    options: Options, name: str, url: str, *, preloaded: int = 0, scenarios: tuple[str, ...]
) -> dict[str, Any]:
    """Every scenario of one database; ``preloaded`` users are bulk-seeded first (SQLite)."""
    slug = f"bench{int(time.time() * 1000) % 10**9}"
    token = create_tenant(url, slug)
    results: dict[str, Any] = {"database": url.split("@")[-1]}
    if preloaded:
        started = time.monotonic()
        storage = open_storage(url)
        with storage.read() as tx:
            project = tx.get_project(slug)
        storage.close()
        assert project is not None
        euids = preload(sqlite_path(url), project.id, preloaded)
        results["preload_seconds"] = round(time.monotonic() - started, 1)
    server = Server(
        name,
        python_command("-m", "userprops", "serve", "--database", url, "--log-level", "warning"),
        options.workdir / f"{name}.log",
        cpus=options.server_cpus,
    )
    server.start()
    try:
        if not preloaded:
            euids = register_users(server.port, token, options.users, slug)
        results["users"] = len(euids)
        for scenario in scenarios:
            lua = wrk.write_script(scenario, options.workdir)
            result = measure(options, server, scenario, lua, euids, token, slug)
            if scenario == "write":
                result["verification"] = verify(url, slug, euids, result["increase_units_total"])
            results[scenario] = result
        results["server_rss_hwm_mib"] = round(rss_kib(server.pid, "VmHWM") / 1024, 1)
    finally:
        server.stop()
    return results


def verify(url: str, slug: str, euids: range, units: int) -> dict[str, Any]:
    """Every increase sent (+1 counter, +5 points) is in the database, exactly once."""
    started = time.monotonic()
    sums = stored_sums(url, slug, euids, ["counter", "points"])
    expected = {"counter": Decimal(units), "points": Decimal(5 * units)}
    return {
        "increases_sent": units,
        "counter_stored": int(sums["counter"]),
        "points_stored": int(sums["points"]),
        "passed": sums == expected,
        "seconds": round(time.monotonic() - started, 1),
    }


def run(options: Options) -> dict[str, Any]:
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "uname": " ".join(os.uname())},
        "options": {
            "connections": options.load.connections,
            "wrk_threads": options.load.threads,
            "duration_s": options.load.duration,
            "warmup_s": options.warmup,
            "users": options.users,
            "preload": options.preload,
            "server_cpus": options.server_cpus,
            "wrk_cpus": options.load.cpus,
        },
    }
    report["ceiling"] = ceiling(options)
    sqlite_url = f"sqlite:///{options.workdir / 'bench.db'}"
    report["sqlite"] = backend(options, "sqlite", sqlite_url, scenarios=options.scenarios)
    if options.database:
        report["database"] = backend(
            options, "database", options.database, scenarios=options.scenarios
        )
    if options.preload:
        url = f"sqlite:///{options.workdir / 'preloaded.db'}"
        report["preloaded"] = backend(
            options, "preloaded", url, preloaded=options.preload, scenarios=("write",)
        )
    _ratios(report)
    return report


def _ratios(report: dict[str, Any]) -> None:
    top = report["ceiling"]["throughput"]
    for key in ("sqlite", "database", "preloaded"):
        for result in report.get(key, {}).values():
            if isinstance(result, dict) and "throughput" in result:
                result["ratio_to_ceiling"] = round(result["throughput"] / top, 3)
    if "preloaded" in report:
        empty = report["sqlite"]["write"]["throughput"]
        report["preloaded"]["write"]["ratio_to_empty"] = round(
            report["preloaded"]["write"]["throughput"] / empty, 3
        )
