"""The benchmark's pieces that run without wrk or a server: the ceiling app, wrk's summary
line, combining rounds, the command's arguments and the CPU figures."""

from __future__ import annotations

import os
import pwd
import subprocess
from typing import Any

import pytest
from bench import pgcluster, wrk
from bench.__main__ import cpu_sets, main as bench_main, targets
from bench.ceiling import app as ceiling
from bench.runner import combine
from bench.server import cpu_seconds
from click.testing import CliRunner

from tests.support.api import asgi_client


async def test_the_ceiling_answers_every_request_with_the_success_envelope() -> None:
    async with asgi_client(ceiling) as http:
        r = await http.post("/v1/user/property", content=b'{"euid": 1}')
    assert r.status_code == 200
    assert r.json() == {"code": 0, "message": "success"}


def test_the_wrk_summary_is_read_from_its_marked_line() -> None:
    output = 'Running 5s test\nBENCH_RESULT {"requests": 7}\nRequests/sec: 1.4\n'
    assert wrk.parse_summary(output) == {"requests": 7}
    with pytest.raises(RuntimeError, match="no summary"):
        wrk.parse_summary("Running 5s test\n")


def test_rounds_sum_counts_and_take_the_median_percentile() -> None:
    def run(requests: int, p99: int) -> dict[str, int]:
        counts = dict.fromkeys(
            ["errors_connect", "errors_read", "errors_write", "errors_status"], 0
        )
        counts |= {"errors_timeout": 0, "sent_set": 0, "sent_increase": 0, "sent_add": 0}
        counts |= {"sent_other": 0, "increase_units": 1, "ok": requests, "bad": 0}
        latency = {"p50_us": 1, "p90_us": 2, "p999_us": 9, "latency_mean_us": 1}
        return (
            counts
            | latency
            | {"latency_max_us": p99, "p99_us": p99}
            | {
                "requests": requests,
                "duration_us": 1_000_000,
            }
        )

    result = combine([run(100, 5), run(300, 9), run(200, 7)])
    assert result["throughput"] == 200.0
    assert result["p99_us"] == 7
    assert result["p99_us_worst_round"] == 9
    assert result["increase_units"] == 3
    assert result["errors"] == 0


def test_postgres_and_database_together_are_refused() -> None:
    result = CliRunner().invoke(
        bench_main, ["--postgres", "--database", "postgresql://x@127.0.0.1/y"]
    )
    assert result.exit_code == 2
    assert "--postgres or --database, not both" in result.output


def test_server_cpu_time_is_read_from_proc_and_zero_for_a_gone_process() -> None:
    assert cpu_seconds(os.getpid()) > 0
    assert cpu_seconds(2**22 + 1) == 0.0  # above Linux's largest pid


def test_cpu_sets_pin_by_default_and_given_lists_win() -> None:
    assert cpu_sets(True, None, None) == ("0", "1")
    assert cpu_sets(False, None, None) == (None, None)
    assert cpu_sets(True, "0-1", None) == ("0-1", "1")
    assert cpu_sets(False, "0-1", "1") == ("0-1", "1")


def test_targets_are_issue_17s_and_the_history_cost_is_judged() -> None:
    def run(ratio: float, p99_us: float = 10_000) -> dict[str, object]:
        return {"ratio_to_ceiling": ratio, "p99_us": p99_us, "errors": 0}

    report: dict[str, Any] = {
        "sqlite": {"write": run(0.36), "nohistory": {**run(0.40), "history_on_over_off": 0.9}},
        "database": {
            "backend": "postgresql",
            "write": run(0.35),
            "register": run(0.29),
            "nohistory": {**run(0.5), "history_on_over_off": 0.8},
        },
    }
    met = targets(report)
    assert met["sqlite_write_ratio>=0.35"] and met["sqlite_write_p99<=25ms"]
    assert met["postgres_write_ratio>=0.35"]
    assert not met["postgres_register_ratio>=0.30"]
    assert met["sqlite_write_with_history>=0.85x_without"]
    assert not met["database_write_with_history>=0.85x_without"]


def test_the_cluster_account_made_by_another_worker_meanwhile_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two test workers on a fresh machine: this one's useradd loses ("already exists")
    to the other's, and the account is used all the same; with no account, an error."""
    account = pwd.getpwuid(os.getuid())
    accounts: dict[str, pwd.struct_passwd] = {}
    answer = b"useradd: user 'userprops-pg' already exists"

    def useradd(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        accounts[pgcluster.USER] = account  # the other worker's, an instant earlier
        return subprocess.CompletedProcess(args, 9, b"", answer)

    monkeypatch.setattr(pwd, "getpwnam", lambda name: accounts[name])
    monkeypatch.setattr(subprocess, "run", useradd)
    assert pgcluster._ensure_user() is account
    accounts.clear()
    answer = b"useradd: cannot lock /etc/passwd"
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 1, b"", answer))  # fmt: skip
    with pytest.raises(RuntimeError, match="cannot lock"):
        pgcluster._ensure_user()
