"""One server per SQLite file: a second ``userprops serve`` is refused with a clear message,
the rest of the CLI still works beside the server (a restore excepted), and a SIGKILL
leaves nothing stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.liveserver import live_server
from tests.support.serverproc import cli, free_port


def userprops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "userprops", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_server_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    with live_server(tmp_path) as server:
        refused = userprops("serve", "--database", server.database, "--port", str(free_port()))
        assert refused.returncode == 1
        assert "a userprops server is running on" in refused.stderr
        assert "stop it first, or use PostgreSQL" in refused.stderr

        euid = server.register("alice")  # the first server still serves
        assert server.props(euid) == {}
        server.kill()  # SIGKILL: no shutdown at all
        server.start()  # takes the lock again at once
        assert server.props(euid) == {}


def test_the_command_line_works_beside_a_server_but_a_restore_waits_for_it(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "copy.db"
    with live_server(tmp_path) as server:
        euid = server.register("alice")
        cli(server.database, "project", "create", "beside")
        shown = cli(server.database, "user", "show", str(euid))
        assert isinstance(shown, dict) and shown["euid"] == euid
        cli(server.database, "backup", str(copy))

        restore = userprops("restore", str(copy), "--database", server.database, "--force")
        assert restore.returncode == 1
        assert "stop it before a restore" in restore.stderr

        server.stop()
        restored = userprops("restore", str(copy), "--database", server.database, "--force")
        assert restored.returncode == 0, restored.stderr
        server.start()
        assert server.props(euid) == {}
