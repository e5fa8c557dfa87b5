"""One benchmark run. Each scenario alternates the ceiling and the service, round by round
(the same wrk script against each), so that a busy neighbour on a shared machine slows
both sides of a ratio alike."""

from __future__ import annotations

import os
import shutil
import signal
import statistics
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

from bench import bulkimport, changes, segments, wrk
from bench.preload import preload, preload_postgres
from bench.server import MemorySampler, Server, cpu_seconds, python_command, rss_kib
from bench.setup import create_tenant, register_users, stored_sums
from userprops.storage import open_storage, sqlite_path

# Increases send +1 until this many seconds before the end of a run, then 0, so nothing
# still in flight when wrk stops can change the verified sum.
DRAIN_SECONDS = 1.5
_PERCENTILES = ("p50_us", "p90_us", "p99_us", "p999_us", "latency_mean_us")
_SUMMED = (
    "requests",
    "duration_us",
    "errors_connect",
    "errors_read",
    "errors_write",
    "errors_status",
    "errors_timeout",
    "sent_set",
    "sent_increase",
    "sent_add",
    "sent_other",
    "increase_units",
    "ok",
    "bad",
)


@dataclass
class Options:
    load: wrk.Load
    rounds: int = 3
    warmup: float = 2.0
    users: int = 10_000
    preload: int = 0
    database: str | None = None
    server_cpus: str | None = None
    scenarios: tuple[str, ...] = ("write", "register", "read")
    import_users: int = 0  # time `userprops import` of this many users on each database
    webhook_rate: float = changes.WEBHOOK_RATE  # changes a second of the webhook scenario
    segments: bool = False  # segment queries and writes with 10 saved segments, preloaded
    profile: Path | None = None  # folder for py-spy profiles of the measured runs
    profile_format: str = "svg"  # svg (flame graph) or txt (collapsed stacks)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="userprops-bench-")))


@dataclass
class Target:
    """A server and what the Lua script needs to drive it."""

    server: Server
    euids: range
    token: str
    tag: str

    def args(self, seconds: float) -> list[str]:
        stop_at = int(time.time() + seconds - DRAIN_SECONDS)
        span = self.euids
        return [str(span.start), str(span.stop - 1), str(stop_at), self.token, self.tag]


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one side: counts summed, throughput over the total time, percentiles the
    median of the rounds (worst round kept too), and the rounds themselves."""
    result: dict[str, Any] = {k: sum(r[k] for r in runs) for k in _SUMMED}
    result["throughput"] = round(result["requests"] / (result["duration_us"] / 1e6), 1)
    for k in _PERCENTILES:
        result[k] = statistics.median(r[k] for r in runs)
    result["p99_us_worst_round"] = max(r["p99_us"] for r in runs)
    result["latency_max_us"] = max(r["latency_max_us"] for r in runs)
    result["socket_errors"] = sum(
        result[f"errors_{k}"] for k in ("connect", "read", "write", "timeout")
    )
    result["errors"] = result["socket_errors"] + result["errors_status"] + result["bad"]
    result["rounds"] = [
        {"throughput": round(r["requests"] / (r["duration_us"] / 1e6), 1), "p99_us": r["p99_us"]}
        for r in runs
    ]
    return result


def paired(options: Options, ceiling: Target, target: Target, scenario: str) -> dict[str, Any]:
    """Warm both up, then alternate ceiling and service for ``rounds`` runs each."""
    binary = wrk.ensure_wrk()
    lua = wrk.write_script(scenario, options.workdir)
    load, seconds = options.load, options.load.duration

    def once(side: Target, length: float) -> dict[str, Any]:
        before = cpu_seconds(side.server.pid)
        result = wrk.run(binary, side.server.url, lua, side.args(length), load, length)
        result["server_cpu_s"] = cpu_seconds(side.server.pid) - before
        return result

    warm_units = 0
    if options.warmup > 0:
        once(ceiling, options.warmup)
        warm_units = once(target, options.warmup)["increase_units"]
    tops, runs = [], []
    with MemorySampler(target.server.pid) as memory:
        for _ in range(options.rounds):
            tops.append(once(ceiling, seconds))
            with profiled(options, target.server, scenario):
                runs.append(once(target, seconds))
    result = combine(runs)
    result["increase_units_total"] = warm_units + result["increase_units"]
    result.update(memory.summary())
    top = combine(tops)
    for side, measured in ((result, runs), (top, tops)):
        # Server CPU (user + system, every thread) per request: steadier than throughput
        # on a shared machine, where wrk's share of CPU 1 varies.
        cpu = sum(r["server_cpu_s"] for r in measured)
        side["server_cpu_us_per_request"] = round(cpu / max(1, side["requests"]) * 1e6, 1)
    result["ceiling"] = top
    result["ratio_to_ceiling"] = round(result["throughput"] / top["throughput"], 3)
    result["ratio_rounds"] = [
        round(r["throughput"] / t["throughput"], 3)
        for r, t in zip(result["rounds"], top["rounds"], strict=True)
    ]
    return result


@contextmanager
def profiled(options: Options, server: Server, scenario: str) -> Iterator[Path | None]:
    """py-spy recording the server (every thread) while the block runs; later rounds
    overwrite earlier ones."""
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


def backend(
    options: Options,
    ceiling: Target,
    name: str,
    url: str,
    *,
    preloaded: int = 0,
    scenarios: tuple[str, ...],
) -> dict[str, Any]:
    """Every scenario on one database; ``preloaded`` users are bulk-seeded first, and then,
    with ``options.segments``, the segment figures are taken (:func:`measure_segments`)."""
    slug = f"bench{int(time.time() * 1000) % 10**9}"
    token = create_tenant(url, slug)
    results: dict[str, Any] = {"database": url.split("@")[-1], "backend": url.split(":")[0]}
    euids = range(0)
    if preloaded:
        started = time.monotonic()
        storage = open_storage(url)
        with storage.read() as tx:
            project = tx.get_project(slug)
        storage.close()
        assert project is not None
        if url.startswith("sqlite"):
            euids = preload(sqlite_path(url), project.id, preloaded)
            results["database_mib"] = round(Path(sqlite_path(url)).stat().st_size / 2**20, 1)
        else:
            euids = preload_postgres(url, project.id, preloaded)
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
        target = Target(server, euids, token, slug)
        for scenario in scenarios:
            if scenario == NO_HISTORY:
                results[scenario] = without_history(options, ceiling, target, url, results)
                continue
            if scenario in changes.SCENARIOS:
                results[scenario] = changes.run(scenario, options, target, url)
                continue
            result = paired(options, ceiling, target, scenario)
            counters = VERIFIED.get(scenario)
            if counters is not None:
                units = result["increase_units_total"]
                result["verification"] = verify(url, slug, euids, units, counters)
            if scenario == "batch":
                result["updates_per_second"] = round(result["throughput"] * BATCH_SIZE, 1)
            results[scenario] = result
        if preloaded and options.segments:
            results["segments"] = measure_segments(options, ceiling, target, url, results)
        if "batch" in results and "write" in results:
            per_update = results["batch"]["updates_per_second"] / results["write"]["throughput"]
            results["batch"]["per_update_ratio_to_write"] = round(per_update, 2)
        results["server_rss_hwm_mib"] = round(rss_kib(server.pid, "VmHWM") / 1024, 1)
    finally:
        server.stop()
    if options.import_users and not preloaded:
        folder = options.workdir / f"import-{name}"
        folder.mkdir(exist_ok=True)
        results["import"] = bulkimport.measure(url, folder, options.import_users)
    return results


NO_HISTORY = "nohistory"
"""The write scenario on the same database with ``USERPROPS_HISTORY=off``: what recording
the history costs (issue 12: with it, at least 0.85x the throughput without it)."""


def without_history(
    options: Options, ceiling: Target, target: Target, url: str, results: dict[str, Any]
) -> dict[str, Any]:
    """The write scenario with history off (the server restarted without it, then with it
    again), verified with the write scenario's increases, and the ratio of the write
    scenario's throughput (history on) to this one's."""
    server = target.server
    server.stop()
    server.start(env={"USERPROPS_HISTORY": "off"})
    try:
        result = paired(options, ceiling, target, "write")
    finally:
        server.stop()
        server.start()
    write = results.get("write")
    units = result["increase_units_total"] + (write or {}).get("increase_units_total", 0)
    result["verification"] = verify(url, target.tag, target.euids, units, VERIFIED["write"])
    if write is not None:
        result["history_on_over_off"] = round(write["throughput"] / result["throughput"], 3)
        result["history_on_over_off_over_ceilings"] = round(
            write["ratio_to_ceiling"] / result["ratio_to_ceiling"], 3
        )
    return result


def measure_segments(
    options: Options, ceiling: Target, target: Target, url: str, results: dict[str, Any]
) -> dict[str, Any]:
    """On the preloaded users, after the write scenario: query latencies and plans; the
    write scenario again without segments; 10 saved segments created (their builds
    timed); the write scenario with them (verified, and its ratio to the run just before
    without them)."""
    client = segments.Client(target.server.port, target.token)
    try:
        found: dict[str, Any] = {}
        if not url.startswith("sqlite"):
            # Right after the write scenario's random updates, the pages they changed are
            # not all-visible: index-only scans go back to the table for their entries.
            # Then as autovacuum leaves them (migration 0012 starts it after 1 % of the
            # rows changed): the figure the target is about.
            try:
                found["queries_right_after_writes"] = segments.measure_queries(client)
            except RuntimeError as exc:  # e.g. 503: past the statement timeout
                found["queries_right_after_writes"] = {"error": str(exc)}
            found["vacuum_values_seconds"] = segments.vacuum(url, segments.VALUE_TABLES)
        found["queries"] = segments.measure_queries(client)
        found["plans"] = segments.explain(url, target.tag)
        # Without the segments again, right before the run with them: the write scenario
        # ran first on the freshly preloaded database, its pages still cold, and the ten
        # builds then read every user; the ratio is taken between two runs that differ in
        # the segments only, each after the same settling (segments.settle).
        found["settle_seconds"] = [segments.settle(url)]
        without = paired(options, ceiling, target, "write")
        found["write_without_segments"] = without
        found["saved"] = segments.save_segments(client)
    finally:
        client.close()
    # The builds wrote millions of membership rows, which autovacuum would otherwise
    # process during the measured writes (on CPU 1, with the database and wrk).
    found["settle_seconds"].append(segments.settle(url))
    write = paired(options, ceiling, target, "write")
    units = sum(r["increase_units_total"] for r in (results["write"], without, write))
    write["verification"] = verify(url, target.tag, target.euids, units, VERIFIED["write"])
    write["ratio_to_without_segments"] = round(write["throughput"] / without["throughput"], 3)
    write["ratio_to_without_over_ceilings"] = round(
        write["ratio_to_ceiling"] / without["ratio_to_ceiling"], 3
    )
    found["write_with_10_segments"] = write
    return found


# Scenarios whose increases are verified: attribute -> units per increase sent.
VERIFIED: dict[str, dict[str, int]] = {
    "write": {"counter": 1, "points": 5},
    "batch": {"bcount": 1},
}
BATCH_SIZE = 100  # updates per request of bench/lua/batch.lua


def verify(
    url: str, slug: str, euids: range, units: int, counters: dict[str, int]
) -> dict[str, Any]:
    """Every increase sent is in the database, exactly once: each attribute of
    ``counters`` sums to ``units`` times its step."""
    started = time.monotonic()
    sums = stored_sums(url, slug, euids, list(counters))
    expected = {name: Decimal(step * units) for name, step in counters.items()}
    return {
        "increases_sent": units,
        **{f"{name}_stored": int(sums[name]) for name in counters},
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
            "rounds": options.rounds,
            "warmup_s": options.warmup,
            "users": options.users,
            "preload": options.preload,
            "server_cpus": options.server_cpus,
            "wrk_cpus": options.load.cpus,
        },
    }
    server = Server(
        "ceiling",
        python_command("-m", "bench.ceiling"),
        options.workdir / "ceiling.log",
        cpus=options.server_cpus,
    )
    server.start()
    ceiling = Target(server, range(1, 10_001), "eDp5", "ceiling")
    try:
        sqlite_url = f"sqlite:///{options.workdir / 'bench.db'}"
        report["sqlite"] = backend(
            options, ceiling, "sqlite", sqlite_url, scenarios=options.scenarios
        )
        if options.database:
            try:
                report["database"] = backend(
                    options, ceiling, "database", options.database, scenarios=options.scenarios
                )
            except RuntimeError as exc:  # e.g. a backend this build does not have yet
                report["database"] = {"error": str(exc)}
        if options.preload:
            url = f"sqlite:///{options.workdir / 'preloaded.db'}"
            report["preloaded"] = backend(
                options, ceiling, "preloaded", url, preloaded=options.preload, scenarios=("write",)
            )
            _preload_ratio(report)
        if options.preload and options.segments and options.database:
            report["database_preloaded"] = backend(
                options,
                ceiling,
                "database-preloaded",
                options.database,
                preloaded=options.preload,
                scenarios=("write",),
            )
        report["ceiling_rss_hwm_mib"] = round(rss_kib(server.pid, "VmHWM") / 1024, 1)
    finally:
        server.stop()
    return report


def _preload_ratio(report: dict[str, Any]) -> None:
    """Preloaded vs empty write throughput (the target), and the same over each run's own
    paired ceiling (a check on machine drift between the two runs, minutes apart)."""
    empty, full = report["sqlite"].get("write"), report["preloaded"]["write"]
    if empty is None:
        return
    full["ratio_to_empty"] = round(full["throughput"] / empty["throughput"], 3)
    full["ratio_to_empty_over_ceilings"] = round(
        full["ratio_to_ceiling"] / empty["ratio_to_ceiling"], 3
    )
