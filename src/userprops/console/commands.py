"""``userprops operator ...``: the admin console's operators, made and managed from the
command line only (docs/console.md). Registered on the main group by
:mod:`userprops.cli`, whose helpers it uses."""

from __future__ import annotations

import sys

import click

from userprops import operators
from userprops.cli import _table, database_option, emit, handles_errors, json_option, opened

password_stdin = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of generating one.",
)


def _password(from_stdin: bool) -> tuple[str, bool]:
    """(the password, whether it was generated)."""
    if not from_stdin:
        return operators.new_password(), True
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise click.UsageError("--password-stdin: standard input held no password")
    return line, False


def _shown(
    name: str, password: str, generated: bool, headline: str
) -> tuple[dict[str, str], list[str]]:
    if not generated:
        return {"name": name}, [headline]
    return (
        {"name": name, "password": password},
        [headline, f"password: {password}   (shown only this once)"],
    )


@click.group()
def operator() -> None:
    """Operators: the people who log in to the admin console at /admin."""


@operator.command("create")
@click.argument("name")
@password_stdin
@database_option
@json_option
@handles_errors
def operator_create(name: str, password_stdin: bool, database: str, as_json: bool) -> None:
    """Create operator NAME; prints a generated password once (or reads one with
    --password-stdin)."""
    password, generated = _password(password_stdin)
    with opened(database) as storage:
        operators.create(storage, name, password)
    emit(as_json, *_shown(name, password, generated, f"created operator {name}"))


@operator.command("list")
@database_option
@json_option
@handles_errors
def operator_list(database: str, as_json: bool) -> None:
    """List operators (never their passwords)."""
    with opened(database) as storage:
        found = operators.list_all(storage)
    emit(
        as_json,
        [{"name": o.name, "created_at": o.created_at} for o in found],
        _table([[o.name, o.created_at] for o in found], ["NAME", "CREATED"]),
    )


@operator.command("delete")
@click.argument("name")
@database_option
@json_option
@handles_errors
def operator_delete(name: str, database: str, as_json: bool) -> None:
    """Delete operator NAME; its sessions end at once."""
    with opened(database) as storage:
        operators.delete(storage, name)
    emit(as_json, {"deleted": name}, [f"deleted operator {name}; its sessions ended"])


@operator.command("reset-password")
@click.argument("name")
@password_stdin
@database_option
@json_option
@handles_errors
def operator_reset_password(name: str, password_stdin: bool, database: str, as_json: bool) -> None:
    """Give operator NAME a new password (printed once, or read with --password-stdin);
    its sessions end at once."""
    password, generated = _password(password_stdin)
    with opened(database) as storage:
        operators.reset_password(storage, name, password)
    headline = f"new password for operator {name}; its sessions ended"
    emit(as_json, *_shown(name, password, generated, headline))
