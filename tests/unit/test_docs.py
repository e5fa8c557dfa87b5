"""The docs state what the code does: the error table and the settings table."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from userprops.config import Settings
from userprops.errors import CODE_TABLE, ENGAGELAB_MESSAGES

DOCS = Path(__file__).parents[2] / "docs"


def table_rows(page: str) -> list[list[str]]:
    rows = []
    for line in (DOCS / page).read_text().splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


MARK = " [EngageLab]"


def test_error_page_lists_exactly_the_code_table() -> None:
    rows = [row for row in table_rows("errors.md") if row[0].isdigit()]
    documented = {int(row[0]): (int(row[1]), row[2].removesuffix(MARK)) for row in rows}
    expected = {e.code: (e.status, e.message) for e in CODE_TABLE}
    expected[0] = (200, "success")
    assert documented == expected
    marked = {int(row[0]): row[2].removesuffix(MARK) for row in rows if row[2].endswith(MARK)}
    assert marked == ENGAGELAB_MESSAGES


def test_configuration_page_lists_every_setting_with_its_default() -> None:
    documented = {
        row[0].strip("`"): row[2].strip("`")
        for row in table_rows("configuration.md")
        if row[0].startswith("`USERPROPS_")
    }
    defaults = Settings()
    expected = {
        f"USERPROPS_{f.name.upper()}": _shown(getattr(defaults, f.name)) for f in fields(Settings)
    }
    assert documented == expected


def _shown(default: object) -> str:
    """A default as the page writes it: a switch as on/off."""
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default)


def test_cli_page_mentions_every_command() -> None:
    from click import Group

    from userprops.cli import main

    text = (DOCS / "cli.md").read_text()
    names = []
    for name, command in main.commands.items():
        if isinstance(command, Group):
            names += [f"{name} {sub}" for sub in command.commands]
        else:
            names.append(name)
    missing = [n for n in names if not re.search(rf"userprops {re.escape(n)}\b", text)]
    assert missing == []
