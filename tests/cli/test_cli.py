"""The command line, through click's CliRunner, against a real database file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from userprops.cli import main
from userprops.storage import migrations


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def run(db: str, *args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(main, [*args, "--database", db])
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1, result.output
    return result


def run_json(db: str, *args: str) -> Any:
    return json.loads(run(db, *args, "--json").stdout)


def test_project_create_and_list(db: str) -> None:
    created = run_json(
        db, "project", "create", "shop", "--schema", "strict", "--timezone", "Asia/Tokyo"
    )
    assert created["slug"] == "shop" and created["schema"] == "strict"
    assert created["timezone"] == "Asia/Tokyo"
    listed = run_json(db, "project", "list")
    assert [p["slug"] for p in listed] == ["shop"]
    assert "shop" in run(db, "project", "list").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["project", "create", "Bad Slug"], "project slug"),
        (["project", "create", "x", "--timezone", "Nowhere/City"], "unknown time zone"),
    ],
)
def test_project_create_rejects_bad_input(db: str, args: list[str], message: str) -> None:
    result = run(db, *args, ok=False)
    assert message in result.stderr


def test_duplicate_project_is_an_error(db: str) -> None:
    run(db, "project", "create", "shop")
    assert "already exists" in run(db, "project", "create", "shop", ok=False).stderr


def test_datasource_lifecycle(db: str) -> None:
    run(db, "project", "create", "shop")
    creds = run_json(db, "datasource", "create", "crm", "--project", "shop")
    assert len(creds["api_key"]) == 24 and len(creds["api_secret"]) == 24
    assert int(creds["api_key"], 16) >= 0 and creds["api_secret"] == creds["api_secret"].lower()
    listed = run_json(db, "datasource", "list", "--project", "shop")
    assert listed[0]["api_key"] == creds["api_key"] and listed[0]["enabled"] is True
    assert creds["api_secret"] not in run(db, "datasource", "list").stdout

    run(db, "datasource", "disable", creds["api_key"])
    assert run_json(db, "datasource", "list")[0]["enabled"] is False
    run(db, "datasource", "enable", creds["api_key"])
    assert run_json(db, "datasource", "list")[0]["enabled"] is True

    rotated = run_json(db, "datasource", "rotate-secret", creds["api_key"])
    assert rotated["api_key"] == creds["api_key"]
    assert rotated["api_secret"] != creds["api_secret"]


def test_secret_is_stored_hashed(db: str, tmp_path: Path) -> None:
    import sqlite3

    run(db, "project", "create", "shop")
    creds = run_json(db, "datasource", "create", "crm", "--project", "shop")
    conn = sqlite3.connect(tmp_path / "cli.db")
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert creds["api_secret"] not in dump
    assert creds["api_key"] in dump


def test_datasource_errors(db: str) -> None:
    assert (
        "no project" in run(db, "datasource", "create", "x", "--project", "nope", ok=False).stderr
    )
    assert "no data source" in run(db, "datasource", "disable", "f" * 24, ok=False).stderr
    assert "no data source" in run(db, "datasource", "rotate-secret", "f" * 24, ok=False).stderr


def test_attribute_define_and_list(db: str) -> None:
    run(db, "project", "create", "shop")
    assert run_json(db, "attribute", "define", "age", "number", "--project", "shop") == {
        "name": "age",
        "type": "NUMBER",
        "created": True,
    }
    again = run_json(db, "attribute", "define", "age", "NUMBER", "--project", "shop")
    assert again["created"] is False
    conflict = run(db, "attribute", "define", "age", "STRING", "--project", "shop", ok=False)
    assert "already defined as NUMBER" in conflict.stderr
    assert (
        "unknown attribute type"
        in run(db, "attribute", "define", "x", "INT", "--project", "shop", ok=False).stderr
    )
    assert (
        "attribute name"
        in run(db, "attribute", "define", "Bad", "STRING", "--project", "shop", ok=False).stderr
    )
    listed = run_json(db, "attribute", "list", "--project", "shop")
    assert [(a["name"], a["type"]) for a in listed] == [("age", "NUMBER")]


def test_user_show(db: str, tmp_path: Path) -> None:
    from userprops import admin
    from userprops.storage import open_storage

    run(db, "project", "create", "shop")
    storage = open_storage(db)
    with storage.transaction() as tx:
        project = tx.get_project("shop")
        assert project is not None
        euid = tx.create_user(project.id)
        tx.bind_identity(project.id, "user_id", "alice", euid)
    storage.close()
    del admin
    doc = run_json(db, "user", "show", str(euid))
    assert doc == {
        "euid": euid,
        "project": "shop",
        "identities": [{"identity_name": "user_id", "identity_value": "alice"}],
        "properties": {},
        "contacts": {},
        "recent_events": [],
    }
    assert "user_id: alice" in run(db, "user", "show", str(euid)).stdout
    assert "no user" in run(db, "user", "show", "999", ok=False).stderr


def test_migrate_dry_run_then_apply(db: str) -> None:
    every = [f"{m.version:04d}_{m.name}" for m in migrations("sqlite")]
    assert every[0] == "0001_initial"
    assert run_json(db, "migrate", "--dry-run") == {"pending": every}
    assert run_json(db, "migrate") == {"applied": every}
    assert run_json(db, "migrate") == {"applied": []}
    assert "up to date" in run(db, "migrate").stdout


def test_database_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    result = CliRunner().invoke(
        main, ["project", "create", "envy"], env={"USERPROPS_DATABASE": url}
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").exists()


def test_unsupported_database_url_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["project", "list", "--database", "mysql://x"])
    assert result.exit_code == 1
    assert "unsupported database URL" in result.stderr
