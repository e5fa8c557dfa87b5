"""Behaviour both backends share beyond the HTTP path: administration through the CLI, and
group commit's all-or-nothing rules. Every test here runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from userprops.cli import main
from userprops.errors import Conflict, StorageUnavailable
from userprops.schema import AttrType, SchemaMode
from userprops.storage import (
    Storage,
    StoredValue,
    Transaction,
    open_storage,
    sqlite as sqlite_backend,
)
from userprops.storage.base import JobResult
from userprops.storage.postgres import BATCH_ATTEMPTS


def _cli(url: str, *args: str, ok: bool = True) -> Any:
    result = CliRunner().invoke(main, [*args, "--database", url, *(["--json"] if ok else [])])
    if not ok:
        assert result.exit_code == 1, result.output
        return result.stderr
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_administration_through_the_cli_works_on_every_backend(
    storage_url: str, storage: Storage
) -> None:
    _cli(storage_url, "project", "create", "shop", "--timezone", "Europe/Paris")
    assert "already exists" in _cli(storage_url, "project", "create", "shop", ok=False)
    _cli(storage_url, "project", "create", "blog", "--schema", "strict")
    assert [p["slug"] for p in _cli(storage_url, "project", "list")] == ["shop", "blog"]

    crm = _cli(storage_url, "datasource", "create", "crm", "--project", "shop")
    assert "already exists" in _cli(
        storage_url, "datasource", "create", "crm", "--project", "shop", ok=False
    )
    _cli(storage_url, "datasource", "create", "crm", "--project", "blog")
    assert len(_cli(storage_url, "datasource", "list")) == 2
    _cli(storage_url, "datasource", "disable", crm["api_key"])
    [listed] = _cli(storage_url, "datasource", "list", "--project", "shop")
    assert (listed["api_key"], listed["enabled"]) == (crm["api_key"], False)
    _cli(storage_url, "datasource", "enable", crm["api_key"])
    rotated = _cli(storage_url, "datasource", "rotate-secret", crm["api_key"])
    assert rotated["api_secret"] != crm["api_secret"]
    assert "no data source" in _cli(storage_url, "datasource", "enable", "nokey", ok=False)

    defined = _cli(storage_url, "attribute", "define", "visits", "number", "--project", "shop")
    assert defined["created"] is True
    again = _cli(storage_url, "attribute", "define", "visits", "NUMBER", "--project", "shop")
    assert again["created"] is False
    assert "already defined as NUMBER" in _cli(
        storage_url, "attribute", "define", "visits", "string", "--project", "shop", ok=False
    )
    _cli(storage_url, "attribute", "define", "age", "number", "--project", "shop")
    names = [a["name"] for a in _cli(storage_url, "attribute", "list", "--project", "shop")]
    assert names == ["age", "visits"]


def test_user_show_lists_identities_and_values_on_every_backend(
    storage_url: str, storage: Storage
) -> None:
    with storage.transaction() as tx:
        pid = tx.create_project("shop", SchemaMode.AUTO, "UTC").id
        tx.update_project(pid, schema_mode=SchemaMode.STRICT, timezone="Asia/Tokyo")
        euid = tx.create_user(pid)
        tx.bind_identity(pid, "user_id", "u1", euid)
        tx.bind_identity(pid, "anonymous_id", "a1", euid)
        tx.define_attribute(pid, "plan", AttrType.STRING)
        tx.put_values(pid, euid, {"plan": StoredValue(AttrType.STRING, "gold")})
    shown = _cli(storage_url, "user", "show", str(euid))
    assert shown["identities"] == [
        {"identity_name": "anonymous_id", "identity_value": "a1"},
        {"identity_name": "user_id", "identity_value": "u1"},
    ]
    assert shown["properties"] == {"plan": "gold"}
    with storage.read() as tx:
        project = tx.get_project_by_id(pid)
    assert project is not None
    assert (project.schema_mode, project.timezone) == (SchemaMode.STRICT, "Asia/Tokyo")


def _write(pid: int, euid: int, value: str) -> Any:
    def job(tx: Transaction) -> str:
        tx.put_values(pid, euid, {"plan": StoredValue(AttrType.STRING, value)})
        return value

    return job


def _user(storage: Storage) -> tuple[int, int]:
    with storage.transaction() as tx:
        pid = tx.create_project("shop", SchemaMode.AUTO, "UTC").id
        return pid, tx.create_user(pid)


def test_a_failing_job_is_undone_alone_and_the_rest_of_its_batch_is_kept(
    storage: Storage,
) -> None:
    pid, euid = _user(storage)

    def duplicate_then_fail(tx: Transaction) -> None:
        tx.put_values(pid, euid, {"other": StoredValue(AttrType.STRING, "x")})
        tx.create_project("shop", SchemaMode.AUTO, "UTC")  # Conflict

    results: list[JobResult] = storage.run_batch(
        [_write(pid, euid, "a"), duplicate_then_fail, _write(pid, euid, "b")]
    )
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], Conflict)
    with storage.read() as tx:
        assert tx.get_values(pid, euid) == {"plan": StoredValue(AttrType.STRING, "b")}


@pytest.mark.parametrize(
    "failure",
    [psycopg.errors.DeadlockDetected("deadlock"), psycopg.OperationalError("server gone")],
    ids=["deadlock-every-time", "connection-lost"],
)
def test_a_batch_that_cannot_commit_applies_nothing_and_is_unavailable(
    pg_url: str, failure: Exception
) -> None:
    storage = open_storage(pg_url)
    storage.migrate()
    pid, euid = _user(storage)
    attempts: list[int] = []

    def doomed(tx: Transaction) -> None:
        attempts.append(1)
        raise failure

    try:
        with pytest.raises(StorageUnavailable):
            storage.run_batch([_write(pid, euid, "a"), doomed])
        with storage.read() as tx:
            assert tx.get_values(pid, euid) == {}
    finally:
        storage.close()
    expected = BATCH_ATTEMPTS if isinstance(failure, psycopg.errors.DeadlockDetected) else 1
    assert len(attempts) == expected  # retried whole, a bounded number of times


@pytest.mark.parametrize("size", [1, 6])
def test_a_batch_whose_jobs_all_fail_answers_each_error_and_applies_nothing(
    storage: Storage, size: int
) -> None:
    pid, euid = _user(storage)

    def write_then_fail(tx: Transaction) -> None:
        tx.put_values(pid, euid, {"plan": StoredValue(AttrType.STRING, "x")})
        tx.create_project("shop", SchemaMode.AUTO, "UTC")  # Conflict

    results = storage.run_batch([write_then_fail] * size)
    assert [type(r) for r in results] == [Conflict] * size
    with storage.read() as tx:
        assert tx.get_values(pid, euid) == {}


def test_sqlite_without_json_functions_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sqlite_backend._connect

    def without_json(path: str) -> sqlite3.Connection:
        conn = real(path)
        # As a build without JSON1 would: any statement using json_each fails to prepare.
        conn.set_authorizer(lambda _, *args: 1 if "json_each" in args else 0)  # DENY / OK
        return conn

    monkeypatch.setattr(sqlite_backend, "_connect", without_json)
    with pytest.raises(StorageUnavailable, match="JSON functions"):
        open_storage(f"sqlite:///{tmp_path / 'old.db'}")
