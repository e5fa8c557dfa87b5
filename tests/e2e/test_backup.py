"""userprops backup / restore: a consistent copy of a live SQLite database, and back."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.support.liveserver import Server, live_server
from userprops.cli import main


def run(*args: str) -> tuple[int, dict[str, object] | str]:
    result = CliRunner().invoke(main, [*args, "--json"])
    if result.exit_code:
        return result.exit_code, result.output
    return 0, json.loads(result.output)


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, sorted: two files with equal dumps hold the same data."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables
        }
    finally:
        conn.close()


class PairedIncreases(threading.Thread):
    """Increase ``a`` and ``b`` of one user together, one request at a time, until stopped:
    in any consistent snapshot, a == b."""

    def __init__(self, server: Server, euid: int) -> None:
        super().__init__(daemon=True)
        self.server, self.euid = server, euid
        self.acked = 0
        self.stop = threading.Event()

    def run(self) -> None:
        body = {"euid": self.euid, "type": "increase", "properties": {"a": 1, "b": 1}}
        with httpx.Client(base_url=self.server.url, headers=self.server.auth_header) as client:
            while not self.stop.is_set():
                assert client.post("/v1/user/property", json=body).json()["code"] == 0
                self.acked += 1


def values(path: Path, name: str) -> dict[int, int]:
    """EUID -> the stored value of attribute ``name``."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT euid, value FROM user_values WHERE name = ?", (name,))
        return {int(euid): int(value) for euid, value in rows}
    finally:
        conn.close()


def test_a_backup_under_write_load_is_consistent_and_restores_identically(
    tmp_path: Path,
) -> None:
    copy, restored = tmp_path / "copy.db", tmp_path / "restored.db"
    with live_server(tmp_path) as server:
        writers = [PairedIncreases(server, server.register(f"u{i}")) for i in range(3)]
        for w in writers:
            w.start()
        while sum(w.acked for w in writers) < 100:
            threading.Event().wait(0.01)
        acked_before = [w.acked for w in writers]
        code, report = run("backup", str(copy), "--database", server.database)
        for w in writers:
            w.stop.set()
            w.join(timeout=30)
        acked_after = [w.acked for w in writers]

    assert code == 0, report
    a, b = values(copy, "a"), values(copy, "b")
    assert a == b  # each request is in the copy whole, or not at all
    for w, before, after in zip(writers, acked_before, acked_after, strict=True):
        assert before <= a.get(w.euid, 0) <= after  # acknowledged before the backup: in it
    assert isinstance(report, dict) and report["tables"]["user_values"] == 6  # type: ignore[index]

    code, report = run("restore", str(copy), "--database", f"sqlite:///{restored}")
    assert code == 0, report
    assert dump(restored) == dump(copy)


def test_a_restored_database_serves_its_data(tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    with live_server(tmp_path) as server:
        euid = server.register("kept")
        httpx.post(
            server.url + "/v1/user/property",
            json={"euid": euid, "type": "set", "properties": {"plan": "gold"}},
            headers=server.auth_header,
        )
        assert run("backup", str(copy), "--database", server.database)[0] == 0
        httpx.post(
            server.url + "/v1/user/property",
            json={"euid": euid, "type": "set", "properties": {"plan": "lost"}},
            headers=server.auth_header,
        )
        server.stop()
        code, report = run("restore", str(copy), "--database", server.database, "--force")
        assert code == 0, report
        server.start()
        assert server.props(euid) == {"plan": "gold"}


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert run("project", "create", "p", "--database", url)[0] == 0
    return url


def test_backup_refuses_to_overwrite_unless_asked(database: str, tmp_path: Path) -> None:
    target = tmp_path / "exists.db"
    target.write_bytes(b"precious")
    code, output = run("backup", str(target), "--database", database)
    assert code == 1 and "--overwrite" in str(output)
    assert target.read_bytes() == b"precious"
    assert run("backup", str(target), "--database", database, "--overwrite")[0] == 0


def test_backup_of_a_missing_database_fails_and_creates_nothing(tmp_path: Path) -> None:
    code, _ = run("backup", str(tmp_path / "b.db"), "--database", f"sqlite:///{tmp_path}/no.db")
    assert code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_restore_refuses_a_database_that_holds_data_unless_forced(
    database: str, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.db"
    assert run("backup", str(copy), "--database", database)[0] == 0
    code, output = run("restore", str(copy), "--database", database)
    assert code == 1 and "--force" in str(output)
    assert run("restore", str(copy), "--database", database, "--force")[0] == 0


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 100])
def test_restore_refuses_a_file_that_is_not_a_userprops_database(
    tmp_path: Path, content: bytes
) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(content)
    code, output = run("restore", str(bogus), "--database", f"sqlite:///{tmp_path}/t.db")
    assert code == 1 and "not a userprops SQLite database" in str(output)


def test_restore_of_a_missing_file_fails(tmp_path: Path) -> None:
    code, output = run("restore", str(tmp_path / "none.db"), "--database", "sqlite:///x.db")
    assert code == 1 and "no such file" in str(output)


def test_postgresql_is_pointed_to_pg_dump(tmp_path: Path) -> None:
    code, output = run("backup", str(tmp_path / "b"), "--database", "postgresql://h/db")
    assert code == 1 and "pg_dump" in str(output)
