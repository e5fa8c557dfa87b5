"""userprops segment create|list|show|members|query, on every backend, text and --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from userprops import admin
from userprops.cli import main
from userprops.schema import AttrType
from userprops.storage import Storage, StoredValue


def run(url: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, [*args, "--database", url], input=stdin)


def as_json(url: str, *args: str) -> Any:
    result = run(url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def seed(storage: Storage) -> list[int]:
    admin.create_project(storage, "shop", timezone="Asia/Tokyo")
    with storage.transaction() as tx:
        project = tx.get_project("shop")
        assert project is not None
        tx.define_attribute(project.id, "age", AttrType.NUMBER)
        tx.define_attribute(project.id, "seen", AttrType.DATETIME)
        euids = []
        for age in (10, 30, 50):
            euid = tx.create_user(project.id)
            tx.put_values(project.id, euid, {"age": StoredValue(AttrType.NUMBER, str(age))})
            euids.append(euid)
    return euids


ADULTS = '{"property": "age", "op": "gte", "value": 18}'


def test_segment_commands_create_list_show_and_page(storage: Storage, storage_url: str) -> None:
    _young, mid, old = seed(storage)
    url = storage_url
    created = as_json(url, "segment", "create", "adults", "--where", ADULTS, "--project", "shop")
    assert created == {"name": "adults", "created": True, "count": 2}
    text = run(url, "segment", "create", "adults", "--where", ADULTS, "--project", "shop")
    assert text.output.strip() == "replaced segment adults: 2 members"

    listed = as_json(url, "segment", "list", "--project", "shop")
    assert [(s["name"], s["count"], s["complete"]) for s in listed] == [("adults", 2, True)]
    assert listed[0]["where"] == {"property": "age", "op": "gte", "value": 18}
    assert "adults" in run(url, "segment", "list", "--project", "shop").output

    shown = run(url, "segment", "show", "adults", "--project", "shop")
    assert shown.exit_code == 0 and "segment adults: 2 members" in shown.output
    seen = '{"property": "seen", "op": "gte", "value": "2026-01-01 09:00:00"}'
    as_json(url, "segment", "create", "seen", "--where", seen, "--project", "shop")
    shown_json = as_json(url, "segment", "show", "seen", "--project", "shop")
    assert shown_json["where"]["value"] == "2026-01-01T09:00:00+09:00"  # the project's zone
    assert shown_json["count"] == 0

    page = as_json(url, "segment", "members", "adults", "--project", "shop", "--limit", "1")
    assert page["euids"] == [mid] and page["count"] == 2
    rest = as_json(
        url, "segment", "members", "adults", "--project", "shop", "--cursor", page["next_cursor"]
    )
    assert rest["euids"] == [old]


def test_segment_query_reads_the_condition_from_text_a_file_or_stdin(
    storage: Storage, storage_url: str, tmp_path: Path
) -> None:
    young, mid, _old = seed(storage)
    where = '{"property": "age", "op": "lt", "value": 40}'
    path = tmp_path / "where.json"
    path.write_text(where)
    for source, stdin in ((where, None), (f"@{path}", None), ("-", where)):
        result = run(
            storage_url,
            "segment",
            "query",
            "--where",
            source,
            "--project",
            "shop",
            "--json",
            stdin=stdin,
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == {"count": 2, "euids": [young, mid], "next_cursor": None}
    text = run(storage_url, "segment", "query", "--where", where, "--project", "shop")
    assert text.output.split() == ["2", "users", str(young), str(mid)]


def test_segment_commands_fail_with_the_reason(storage: Storage, storage_url: str) -> None:
    seed(storage)
    for args, message in (
        (("query", "--where", "{", "--project", "shop"), "--where is not valid JSON"),
        (
            ("query", "--where", '{"property": "x", "op": "is_set"}', "--project", "shop"),
            "where: attribute x is not defined",
        ),
        (("create", "Bad", "--where", ADULTS, "--project", "shop"), "name: name must match"),
        (("show", "nope", "--project", "shop"), "no segment named 'nope'"),
        (("members", "adults", "--project", "nowhere"), "no project 'nowhere'"),
    ):
        result = run(storage_url, "segment", *args)
        assert result.exit_code == 1, result.output
        assert message in result.output, result.output
