"""``python -m bench``: run the benchmark, print the figures, write the JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from bench import changes, wrk
from bench.pgcluster import TUNED, Cluster
from bench.runner import NO_HISTORY, Options, run

# Issue 17's restated targets, over the bare-ASGI ceiling measured in the same run.
TARGET_RATIO = 0.35  # SQLite write
TARGET_P99_MS = 25.0  # SQLite write
TARGET_PRELOAD_RATIO = 0.8
TARGET_POSTGRES_RATIO = 0.35  # PostgreSQL write
TARGET_POSTGRES_REGISTER_RATIO = 0.30
TARGET_IMPORT_VALUES = 20_000  # values/s of userprops import on SQLite
TARGET_BATCH_RATIO = 3.0  # updates per second in batches of 100, over single writes
TARGET_HISTORY_RATIO = 0.85  # writes recording history, over writes without (same run)
TARGET_CATCH_UP_S = 1.0  # a feed consumer is caught up within this long of the last write
TARGET_SEGMENT_COUNT_MS = 250.0  # a two-leaf count over the preloaded users, median
TARGET_SEGMENT_PAGE_MS = 100.0  # a page of 1,000 EUIDs, median
TARGET_SEGMENT_WRITE_RATIO = 0.8  # writes with 10 saved segments, over writes without


def cpu_sets(
    pin: bool | None, server_cpus: str | None, wrk_cpus: str | None
) -> tuple[str | None, str | None]:
    """The taskset CPU lists of the servers and of wrk: given ones win; else, when pinning
    (by default on 2+ CPUs with taskset), servers on CPU 0 and wrk on CPU 1."""
    if pin is None:
        pin = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    return server_cpus or ("0" if pin else None), wrk_cpus or ("1" if pin else None)


@click.command()
@click.option("--duration", default=5.0, show_default=True, help="Seconds per measured run.")
@click.option("--rounds", default=3, show_default=True, help="Measured runs per scenario and side.")
@click.option("--warmup", default=2.0, show_default=True, help="Seconds of warm-up per run.")
@click.option("--connections", "-c", default=64, show_default=True)
@click.option("--threads", "-t", default=1, show_default=True, help="wrk threads.")
@click.option("--users", default=10_000, show_default=True, help="Users registered first.")
@click.option("--preload", default=0, show_default=True, help="Also run on N bulk-seeded users.")
@click.option("--database", default=None, help="Also run on this database (e.g. postgresql://...).")
@click.option(
    "--postgres",
    is_flag=True,
    help="Also run on a throwaway PostgreSQL 15 cluster (fsync on, on wrk's CPUs when pinning)"
    " started and removed here.",
)
@click.option(
    "--pin/--no-pin",
    default=None,
    help="Server on CPU 0, wrk on CPU 1 (default: pin when there are 2+ CPUs).",
)
@click.option(
    "--server-cpus",
    default=None,
    help="taskset CPU list for both servers (ceiling and service), e.g. 0-1; overrides --pin.",
)
@click.option("--wrk-cpus", default=None, help="taskset CPU list for wrk; overrides --pin.")
@click.option(
    "--scenarios",
    default="write,nohistory,register,read,webhook,feed",
    show_default=True,
    help="write, batch, register, read (wrk against the ceiling); nohistory (write with"
    " USERPROPS_HISTORY=off, after write: the history's cost); webhook, feed (bench/changes.py).",
)
@click.option(
    "--webhook-rate",
    default=changes.WEBHOOK_RATE,
    show_default=True,
    help="Changes a second the webhook scenario writes.",
)
@click.option("--out", default="bench-results", show_default=True, type=click.Path())
@click.option(
    "--profile",
    type=click.Choice(["svg", "txt"]),
    default=None,
    help="Record the server with py-spy during each measured run (flame graph or stacks).",
)
@click.option(
    "--import-users",
    default=0,
    show_default=True,
    help="Also time `userprops import` of N users x 20 values (NDJSON and CSV) on each database.",
)
@click.option(
    "--segments",
    is_flag=True,
    help="With --preload: segment queries (a two-leaf count, pages of 1,000 EUIDs) and the"
    " write scenario again with 10 saved segments, on the preloaded users (and, with"
    " --postgres or --database, the same users preloaded there).",
)
@click.option("--keep", is_flag=True, help="Keep the temporary databases and logs.")
def main(
    duration: float,
    rounds: int,
    warmup: float,
    connections: int,
    threads: int,
    users: int,
    preload: int,
    database: str | None,
    postgres: bool,
    pin: bool | None,
    server_cpus: str | None,
    wrk_cpus: str | None,
    scenarios: str,
    webhook_rate: float,
    out: str,
    profile: str | None,
    import_users: int,
    segments: bool,
    keep: bool,
) -> None:
    """Benchmark userprops against a bare ASGI ceiling on the same server stack."""
    wrk.ensure_wrk()
    if profile is not None:
        ensure_py_spy()
    server_cpus, wrk_cpus = cpu_sets(pin, server_cpus, wrk_cpus)
    chosen = tuple(s for s in scenarios.split(",") if s)
    unknown = set(chosen) - set(wrk.SCENARIOS) - set(changes.SCENARIOS) - {NO_HISTORY}
    if unknown:
        raise click.BadParameter(f"unknown scenarios {sorted(unknown)}", param_hint="--scenarios")
    if postgres and database:
        raise click.BadParameter("give --postgres or --database, not both", param_hint="--postgres")
    if segments and not preload:
        raise click.BadParameter("--segments needs --preload N", param_hint="--segments")
    options = Options(
        load=wrk.Load(connections, threads, duration, cpus=wrk_cpus),
        rounds=rounds,
        warmup=warmup,
        users=users,
        preload=preload,
        database=database,
        server_cpus=server_cpus,
        scenarios=chosen,
        import_users=import_users,
        webhook_rate=webhook_rate,
        segments=segments,
        profile=None if profile is None else Path(out),
        profile_format=profile or "svg",
    )
    cluster = None
    try:
        if postgres:
            # On wrk's CPUs, never the service's: left to the scheduler, its backends
            # sometimes ran on the service's core and the rounds split in two groups.
            cluster = Cluster(durable=True, cpus=wrk_cpus)
            cluster.start(*TUNED)
            options.database = cluster.dsn()
        try:
            report = run(options)
        except OSError as exc:
            # Not as OSError: click ends a command that raised EPIPE with status 1 and no
            # message (it takes it for its own output's closed pipe).
            raise RuntimeError(f"benchmark failed: {exc!r}") from exc
    finally:
        if cluster is not None:
            cluster.destroy()
        if not keep:
            shutil.rmtree(options.workdir, ignore_errors=True)
    report["targets"] = targets(report)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    for line in render(report):
        click.echo(line)
    click.echo(f"report: {path}" + (f"  (work dir kept: {options.workdir})" if keep else ""))
    if not all(report["targets"].values()):
        raise SystemExit(1)


def ensure_py_spy() -> None:
    """py-spy (for ``--profile``), installed into this environment when missing."""
    if shutil.which("py-spy") or Path(sys.executable).with_name("py-spy").exists():
        return
    click.echo("installing py-spy with pip ...", err=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)


def targets(report: dict[str, Any]) -> dict[str, bool]:
    write = report["sqlite"].get("write")
    met: dict[str, bool] = {}
    if write is not None:
        met["sqlite_write_ratio>=0.35"] = write["ratio_to_ceiling"] >= TARGET_RATIO
        met["sqlite_write_p99<=25ms"] = write["p99_us"] <= TARGET_P99_MS * 1000
    if "error" in report.get("database", {}):
        met["database_ran"] = False
    db_write = report.get("database", {}).get("write")
    if db_write is not None and report["database"]["backend"].startswith("postgres"):
        met["postgres_write_ratio>=0.35"] = db_write["ratio_to_ceiling"] >= TARGET_POSTGRES_RATIO
        db_register = report["database"].get("register")
        if db_register is not None:
            met["postgres_register_ratio>=0.30"] = (
                db_register["ratio_to_ceiling"] >= TARGET_POSTGRES_REGISTER_RATIO
            )
    for key in ("sqlite", "database", "preloaded", "database_preloaded"):
        for name, result in report.get(key, {}).items():
            if isinstance(result, dict) and "errors" in result:
                met[f"{key}_{name}_no_errors"] = result["errors"] == 0
                if "verification" in result:
                    met[f"{key}_{name}_verified"] = result["verification"]["passed"]
    if "preloaded" in report and "ratio_to_empty" in report["preloaded"]["write"]:
        ratio = report["preloaded"]["write"]["ratio_to_empty"]
        met["preloaded_write>=0.8x_empty"] = ratio >= TARGET_PRELOAD_RATIO
    imported = report["sqlite"].get("import")
    if imported is not None:
        slowest = min(imported[fmt]["values_per_second"] for fmt in ("ndjson", "csv"))
        met["sqlite_import>=20k_values/s"] = slowest >= TARGET_IMPORT_VALUES
    for key in ("preloaded", "database_preloaded"):
        found = report.get(key, {}).get("segments")
        if found is None:
            continue
        queries = found["queries"]
        met[f"{key}_segment_count<=250ms"] = (
            queries["count"]["median_ms"] <= TARGET_SEGMENT_COUNT_MS
        )
        if queries["next_pages"] is not None:
            met[f"{key}_segment_page<=100ms"] = (
                queries["next_pages"]["median_ms"] <= TARGET_SEGMENT_PAGE_MS
            )
        write = found["write_with_10_segments"]
        met[f"{key}_write_with_10_segments>=0.8x"] = (
            write["ratio_to_without_segments"] >= TARGET_SEGMENT_WRITE_RATIO
        )
        met[f"{key}_write_with_10_segments_verified"] = write["verification"]["passed"]
        met[f"{key}_write_with_10_segments_no_errors"] = write["errors"] == 0
    for key in ("sqlite", "database"):
        per_update = report.get(key, {}).get("batch", {}).get("per_update_ratio_to_write")
        if per_update is not None:
            met[f"{key}_batch_per_update>=3x_write"] = per_update >= TARGET_BATCH_RATIO
    for key in ("sqlite", "database"):
        off = report.get(key, {}).get(NO_HISTORY, {})
        if "history_on_over_off" in off:
            met[f"{key}_write_with_history>=0.85x_without"] = (
                off["history_on_over_off"] >= TARGET_HISTORY_RATIO
            )
    for key in ("sqlite", "database"):
        hook, feed = report.get(key, {}).get("webhook"), report.get(key, {}).get("feed")
        if hook is not None:
            met[f"{key}_webhook_p99<=1s"] = hook["delay_ms"].get("p99", 1e9) <= 1000
            met[f"{key}_webhook_every_change"] = (
                hook["missing"] == hook["write_errors"] == hook["bad_signatures"] == 0
                and hook["changes"] > 0
            )
        if feed is not None:
            met[f"{key}_feed_kept_up"] = (
                feed["seen"] >= feed["changes"] and feed["catch_up_s"] <= TARGET_CATCH_UP_S
            )
    return met


def render(report: dict[str, Any]) -> list[str]:
    header = (
        f"{'run':<20}{'req/s':>9}{'ceiling':>9}{'ratio':>7}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'p99.9':>8}{'errors':>7}{'RSS MiB':>9}  verified"
    )
    lines = [header, "-" * len(header)]
    if "error" in report.get("database", {}):
        lines.append(f"database: not run: {report['database']['error']}")
    for key in ("sqlite", "database", "preloaded", "database_preloaded"):
        for name, r in report.get(key, {}).items():
            if not isinstance(r, dict) or "throughput" not in r:
                continue
            check = r.get("verification")
            verified = ""
            if check is not None:
                verified = "pass" if check["passed"] else "FAIL"
                stored = next(v for k, v in check.items() if k.endswith("_stored"))
                verified += f" ({stored}/{check['increases_sent']})"
            lines.append(
                f"{key + ' ' + name:<20}{r['throughput']:>9,.0f}{r['ceiling']['throughput']:>9,.0f}"
                f"{r['ratio_to_ceiling']:>7.2f}{r['p50_us'] / 1000:>8.2f}{r['p99_us'] / 1000:>8.2f}"
                f"{r['p999_us'] / 1000:>8.2f}{r['errors']:>7}{r.get('rss_peak_mib', 0):>9.1f}"
                f"  {verified}"
            )
    if "preloaded" in report and "ratio_to_empty" in report["preloaded"]["write"]:
        w = report["preloaded"]["write"]
        lines.append(
            f"preloaded {report['preloaded']['users']:,} users: write {w['ratio_to_empty']:.2f}x"
            f" the empty database ({w['ratio_to_empty_over_ceilings']:.2f}x over paired ceilings)"
        )
    for key in ("sqlite", "database"):
        off = report.get(key, {}).get(NO_HISTORY, {})
        if "history_on_over_off" in off:
            lines.append(
                f"{key} history: writes with it {off['history_on_over_off']:.2f}x those without"
                f" ({off['history_on_over_off_over_ceilings']:.2f}x over paired ceilings)"
            )
        imported = report.get(key, {}).get("import")
        if imported is not None:
            lines += [
                f"{key} import {fmt}: {imported['values']:,} values in"
                f" {imported[fmt]['seconds']} s, {imported[fmt]['values_per_second']:,} values/s"
                for fmt in ("ndjson", "csv")
            ]
        batch = report.get(key, {}).get("batch")
        if batch is not None and "per_update_ratio_to_write" in batch:
            lines.append(
                f"{key} batch: {batch['updates_per_second']:,.0f} updates/s,"
                f" {batch['per_update_ratio_to_write']:.2f}x the single writes' requests/s"
            )
    for key in ("preloaded", "database_preloaded"):
        found = report.get(key, {}).get("segments")
        if found is None:
            continue
        q = found["queries"]
        lines.append(
            f"{key} segments ({q['matches']:,} of {report[key]['users']:,} users match):"
            f" count {q['count']['median_ms']} ms, first page of 1,000 with the count"
            f" {q['first_page_with_count']['median_ms']} ms, next pages"
            f" {(q['next_pages'] or {}).get('median_ms')} ms (medians)"
        )
        early = found.get("queries_right_after_writes")
        if early is not None and "error" in early:
            lines.append(f"{key} segments right after the writes: {early['error']}")
        elif early is not None:
            lines.append(
                f"{key} segments right after the writes, before VACUUM of the values"
                f" ({found['vacuum_values_seconds']} s): count {early['count']['median_ms']}"
                f" ms (max {early['count']['max_ms']}), next pages"
                f" {(early['next_pages'] or {}).get('median_ms')} ms"
            )
        built = sum(s["seconds"] for s in found["saved"].values())
        write = found["write_with_10_segments"]
        lines.append(
            f"{key} 10 saved segments built in {built:.1f} s; writes without them right"
            f" before: {found['write_without_segments']['throughput']:,.0f} req/s; with them:"
            f" {write['throughput']:,.0f} req/s, {write['ratio_to_without_segments']:.2f}x"
            f" without ({write['ratio_to_without_over_ceilings']:.2f}x over paired ceilings)"
        )
    for key in ("sqlite", "database", "preloaded"):
        for name, r in report.get(key, {}).items():
            if isinstance(r, dict) and "server_cpu_us_per_request" in r:
                lines.append(
                    f"{key} {name} server CPU per request: {r['server_cpu_us_per_request']} us"
                    f" (ceiling {r['ceiling']['server_cpu_us_per_request']} us)"
                )
            if isinstance(r, dict) and "rss_start_mib" in r:
                lines.append(
                    f"{key} {name} server RSS start/end/peak: {r['rss_start_mib']}/"
                    f"{r['rss_end_mib']}/{r['rss_peak_mib']} MiB"
                )
    for key in ("sqlite", "database"):
        lines += changes.render(key, report.get(key, {}))
    for name, ok in report["targets"].items():
        lines.append(f"target {name}: {'met' if ok else 'MISSED'}")
    return lines


if __name__ == "__main__":
    main()
