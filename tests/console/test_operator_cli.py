"""``userprops operator ...``: operators made and managed from the command line, every
change in the audit log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from userprops import audit, operators
from userprops.cli import main
from userprops.storage import open_storage

pytestmark = pytest.mark.cli  # the command line in-process, on a SQLite file


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ops.db'}"


def run(db: str, *args: str, stdin: str | None = None, status: int = 0) -> Result:
    result = CliRunner().invoke(main, [*args, "--database", db], input=stdin)
    assert result.exit_code == status, result.output
    return result


def run_json(db: str, *args: str, stdin: str | None = None) -> Any:
    return json.loads(run(db, *args, "--json", stdin=stdin).stdout)


def verified(db: str, name: str, password: str) -> bool:
    storage = open_storage(db)
    try:
        return operators.verify(storage, name, password) is not None
    finally:
        storage.close()


def actions(db: str) -> list[tuple[str, str, str]]:
    storage = open_storage(db)
    try:
        entries, _ = audit.page(storage, None, 100)
    finally:
        storage.close()
    return [(e.actor, e.action, e.target) for e in reversed(entries)]


def test_create_prints_a_generated_password_once_and_it_works(db: str) -> None:
    out = run(db, "operator", "create", "alice").stdout
    assert "created operator alice" in out and "shown only this once" in out
    password = out.split("password: ")[1].split()[0]
    assert len(password) == 24
    assert verified(db, "alice", password)
    assert not verified(db, "alice", password + "x")
    assert password not in run(db, "operator", "list").stdout


def test_create_reads_the_password_from_stdin_and_does_not_print_it(db: str) -> None:
    made = run_json(
        db, "operator", "create", "bob", "--password-stdin", stdin="a long passphrase\n"
    )
    assert made == {"name": "bob"}
    assert verified(db, "bob", "a long passphrase")


def test_list_shows_names_never_passwords(db: str) -> None:
    run(db, "operator", "create", "bob", "--password-stdin", stdin="bobs passphrase\n")
    run(db, "operator", "create", "alice")
    listed = run_json(db, "operator", "list")
    assert [o["name"] for o in listed] == ["alice", "bob"]
    assert set(listed[0]) == {"name", "created_at"}
    assert "bobs passphrase" not in run(db, "operator", "list").stdout


def test_reset_password_replaces_the_old_one(db: str) -> None:
    run(db, "operator", "create", "alice", "--password-stdin", stdin="first passphrase\n")
    out = run_json(db, "operator", "reset-password", "alice")
    assert verified(db, "alice", out["password"])
    assert not verified(db, "alice", "first passphrase")
    run(db, "operator", "reset-password", "alice", "--password-stdin", stdin="third passphrase\n")
    assert verified(db, "alice", "third passphrase")


def test_delete_removes_the_operator(db: str) -> None:
    run(db, "operator", "create", "alice", "--password-stdin", stdin="alices passphrase\n")
    assert run_json(db, "operator", "delete", "alice") == {"deleted": "alice"}
    assert run_json(db, "operator", "list") == []
    assert not verified(db, "alice", "alices passphrase")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["create", "Bad Name"], None, "operator name"),
        (["create", "x" * 65], None, "operator name"),
        (["create", "cli"], None, "not cli"),
        (["create", "carol", "--password-stdin"], "too short\n", "12 to 1024 characters"),
        (["delete", "nobody"], None, "no operator 'nobody'"),
        (["reset-password", "nobody"], None, "no operator 'nobody'"),
    ],
)
def test_operator_commands_reject_bad_input(
    db: str, args: list[str], stdin: str | None, message: str
) -> None:
    assert message in run(db, "operator", *args, stdin=stdin, status=1).stderr


def test_an_empty_stdin_is_a_usage_error(db: str) -> None:
    assert (
        "held no password"
        in run(db, "operator", "create", "a", "--password-stdin", stdin="", status=2).output
    )


def test_a_taken_name_is_an_error(db: str) -> None:
    run(db, "operator", "create", "alice")
    assert "already exists" in run(db, "operator", "create", "alice", status=1).stderr


def test_every_operator_change_is_audited_as_the_cli(db: str) -> None:
    run(db, "operator", "create", "alice")
    run(db, "operator", "reset-password", "alice")
    run(db, "operator", "delete", "alice")
    run(db, "project", "create", "shop")
    assert actions(db) == [
        ("cli", "operator.create", "alice"),
        ("cli", "operator.reset_password", "alice"),
        ("cli", "operator.delete", "alice"),
        ("cli", "project.create", "shop"),
    ]


def test_administration_is_audited_without_any_secret(db: str) -> None:
    run(db, "project", "create", "shop")
    made = run_json(db, "datasource", "create", "crm", "--project", "shop")
    rotated = run_json(db, "datasource", "rotate-secret", made["api_key"])
    run(db, "datasource", "disable", made["api_key"])
    run(db, "attribute", "define", "plan", "string", "--project", "shop")
    run(db, "attribute", "define", "plan", "string", "--project", "shop")  # no change
    storage = open_storage(db)
    try:
        entries, _ = audit.page(storage, None, 100)
    finally:
        storage.close()
    assert [(e.action, e.target) for e in reversed(entries)] == [
        ("project.create", "shop"),
        ("datasource.create", made["api_key"]),
        ("datasource.rotate", made["api_key"]),
        ("datasource.disable", made["api_key"]),
        ("attribute.define", "shop"),
    ]
    assert entries[0].details == {"name": "plan", "type": "STRING"}
    text = repr(entries)
    assert made["api_secret"] not in text and rotated["api_secret"] not in text
