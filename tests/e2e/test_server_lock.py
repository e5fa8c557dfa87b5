"""One server per SQLite file: a second ``userprops serve`` is refused with a clear message,
the CLI still works beside the server, and a SIGKILL leaves nothing stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.liveserver import live_server
from tests.support.serverproc import cli, free_port


def second_server(database: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "userprops",
            "serve",
            "--database",
            database,
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_server_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    with live_server(tmp_path) as server:
        refused = second_server(server.database)
        assert refused.returncode == 1
        assert "another userprops server is running" in refused.stderr
        assert cli(server.database, "project", "list")  # the CLI works beside it
        euid = server.register("alice")  # and the first server still serves
        assert server.props(euid) == {}
        server.kill()  # SIGKILL: no shutdown at all
        server.start()  # takes the lock again at once
        assert server.props(euid) == {}
