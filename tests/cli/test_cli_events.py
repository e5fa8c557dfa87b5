"""The CLI for events, event property types, retention, and ``user show``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support.api import Api
from userprops import admin
from userprops.cli import main
from userprops.storage import Storage
from userprops.storage.base import NewEvent


def run(storage: Storage, *args: str) -> Any:
    result = CliRunner().invoke(main, [*args, "--database", storage.url])
    assert result.exit_code == 0, result.output
    return result.output


def run_json(storage: Storage, *args: str) -> Any:
    return json.loads(run(storage, *args, "--json"))


def fail(storage: Storage, *args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--database", storage.url])
    assert result.exit_code == 1
    return result.output


@pytest.fixture
def euid(storage: Storage) -> int:
    """A user of project ``shop`` with an email and three events (itime 1, 2, 3 s)."""
    admin.create_project(storage, "shop")
    with storage.transaction() as tx:
        project = tx.get_project("shop")
        assert project is not None
        user = tx.create_user(project.id)
        tx.bind_contact(project.id, user, "email", "ann@example.com")
        stored = [
            NewEvent(user, "buy", s * 1000, None, None, f'{{"amount":["NUMBER","{s}"]}}')
            for s in (1, 2, 3)
        ]
        assert tx.insert_events(project.id, stored) == 3
    return user


def test_event_list_prints_newest_first(storage: Storage, euid: int) -> None:
    lines = run(storage, "event", "list", str(euid)).splitlines()
    assert lines == [
        '1970-01-01T00:00:03.000+00:00  buy  {"amount": 3}',
        '1970-01-01T00:00:02.000+00:00  buy  {"amount": 2}',
        '1970-01-01T00:00:01.000+00:00  buy  {"amount": 1}',
    ]


def test_event_list_pages_with_the_cursor(storage: Storage, euid: int) -> None:
    first = run_json(storage, "event", "list", str(euid), "--limit", "2")
    assert [e["itime"] for e in first["events"]] == [3000, 2000]
    text = run(storage, "event", "list", str(euid), "--limit", "2")
    assert f"more: --cursor {first['next_cursor']}" in text
    rest = run_json(storage, "event", "list", str(euid), "--cursor", first["next_cursor"])
    assert [e["itime"] for e in rest["events"]] == [1000]
    assert rest["next_cursor"] is None


def test_event_list_takes_a_time_range(storage: Storage, euid: int) -> None:
    doc = run_json(storage, "event", "list", str(euid), "--from", "2000", "--to", "3000")
    assert [e["itime"] for e in doc["events"]] == [2000]
    assert run(storage, "event", "list", str(euid), "--from", "9000") == "no events\n"


def test_event_list_of_an_unknown_user_fails(storage: Storage) -> None:
    assert "no user with euid 42" in fail(storage, "event", "list", "42")


def test_event_list_rejects_a_bad_cursor(storage: Storage, euid: int) -> None:
    assert "cursor" in fail(storage, "event", "list", str(euid), "--cursor", "zzz")


def test_user_show_includes_contacts_and_recent_events(storage: Storage, euid: int) -> None:
    doc = run_json(storage, "user", "show", str(euid))
    assert doc["contacts"] == {"email": "ann@example.com"}
    assert [e["itime"] for e in doc["recent_events"]] == [3000, 2000, 1000]
    text = run(storage, "user", "show", str(euid))
    assert "    email: ann@example.com" in text
    assert '    1970-01-01T00:00:03.000+00:00  buy  {"amount": 3}' in text


def test_event_property_define_and_list(storage: Storage) -> None:
    admin.create_project(storage, "shop")
    doc = run_json(
        storage, "event-property", "define", "order", "total", "number", "--project", "shop"
    )
    assert doc == {"event": "order", "name": "total", "type": "NUMBER", "created": True}
    again = run(
        storage, "event-property", "define", "order", "total", "NUMBER", "--project", "shop"
    )
    assert again == "already defined: order.total NUMBER\n"
    run(storage, "event-property", "define", "refund", "total", "STRING", "--project", "shop")
    listed = run_json(storage, "event-property", "list", "--project", "shop")
    assert [(p["event"], p["name"], p["type"]) for p in listed] == [
        ("order", "total", "NUMBER"),
        ("refund", "total", "STRING"),
    ]
    only = run_json(storage, "event-property", "list", "--project", "shop", "--event", "refund")
    assert [p["event"] for p in only] == ["refund"]
    assert "TYPE" in run(storage, "event-property", "list", "--project", "shop")


def test_event_property_define_refuses_another_type(storage: Storage) -> None:
    admin.create_project(storage, "shop")
    run(storage, "event-property", "define", "order", "total", "NUMBER", "--project", "shop")
    out = fail(storage, "event-property", "define", "order", "total", "STRING", "--project", "shop")
    assert "already defined as NUMBER" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Order", "total", "NUMBER"), "event name"),
        (("order", "Total", "NUMBER"), "property name"),
        (("order", "total", "MONEY"), "unknown attribute type"),
        (("order", "total", "NUMBER", "--project", "nope"), "no project"),
    ],
)
def test_event_property_define_checks_its_arguments(
    storage: Storage, args: tuple[str, ...], message: str
) -> None:
    admin.create_project(storage, "shop")
    full = args if "--project" in args else (*args, "--project", "shop")
    assert message in fail(storage, "event-property", "define", *full)


async def test_a_defined_event_property_type_is_enforced(storage: Storage, api: Api) -> None:
    run(storage, "event-property", "define", "order", "total", "NUMBER", "--project", api.project)
    [user] = await api.register("u1")
    event = {"euid": user, "event_name": "order", "itime": 1, "properties": {"total": "x"}}
    r = await api.post("/v1/event/report", {"data": [event]})
    assert r.json()["code"] == 55102
    assert r.json()["errors"][0]["property"] == "total"


def test_project_set_event_retention(storage: Storage) -> None:
    admin.create_project(storage, "shop")
    assert run_json(storage, "project", "set", "shop", "--event-retention-days", "30") == {
        "slug": "shop",
        "event_retention_days": 30,
        "history_retention_days": None,
    }
    assert run(storage, "project", "set", "shop") == (
        "project shop: events kept 30 days\nproject shop: history kept forever\n"
    )
    assert run(storage, "project", "set", "shop", "--event-retention-days", "0") == (
        "project shop: events kept forever\nproject shop: history kept forever\n"
    )
    assert "no project" in fail(storage, "project", "set", "nope", "--event-retention-days", "3")


async def test_event_names_lists_reported_and_defined_events(storage: Storage, api: Api) -> None:
    [user] = await api.register("u1")
    r = await api.post(
        "/v1/event/report", {"data": [{"euid": user, "event_name": "login", "itime": 1}]}
    )
    assert r.json()["code"] == 0
    run(storage, "event-property", "define", "order", "total", "NUMBER", "--project", api.project)
    names = run_json(storage, "event", "names", "--project", api.project)
    assert [n["name"] for n in names] == ["login", "order"]
    assert run(storage, "event", "names", "--project", api.project).startswith("EVENT")


def test_decimals_print_as_json_numbers(storage: Storage, euid: int) -> None:
    with storage.transaction() as tx:
        project = tx.get_project("shop")
        assert project is not None
        tx.insert_events(
            project.id, [NewEvent(euid, "buy", 9000, None, None, '{"amount":["NUMBER","0.1"]}')]
        )
    newest = run(storage, "event", "list", str(euid), "--limit", "1").splitlines()[0]
    assert newest.endswith('{"amount": 0.1}')
    assert '"amount": 0.1' in run(storage, "event", "list", str(euid), "--limit", "1", "--json")
