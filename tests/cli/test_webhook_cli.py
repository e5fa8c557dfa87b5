"""``userprops webhook ...`` on every backend: endpoints created, listed, disabled,
enabled and deleted; deliveries inspected and redelivered; bad input refused with a
clear message and exit status 1."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.support.webhooks import NOW, attempt_all, changes
from userprops.cli import main
from userprops.schema import SchemaMode
from userprops.storage import Storage


def run(storage: Storage, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--database", storage.url])


def doc(storage: Storage, *args: str) -> Any:
    result = run(storage, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def pid(storage: Storage) -> int:
    with storage.transaction() as tx:
        return tx.create_project("shop", SchemaMode.AUTO, "UTC").id


def test_create_prints_the_id_and_a_secret_shown_once(storage: Storage, pid: int) -> None:
    created = doc(storage, "webhook", "create", "https://hooks.example.com/in", "--project", "shop")
    assert created["url"] == "https://hooks.example.com/in" and created["properties"] is None
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) >= 24
    text = run(
        storage, "webhook", "create", "http://127.0.0.1:9/h", "--project", "shop",
        "--property", "plan", "--property", "city",
    )  # fmt: skip
    assert text.exit_code == 0, text.output
    assert "properties: city, plan" in text.output and "shown only this once" in text.output
    listed = doc(storage, "webhook", "list")
    assert [w["id"] for w in listed] == [created["id"], created["id"] + 1]
    assert all("secret" not in w for w in listed)
    assert "whsec_" not in run(storage, "webhook", "list").output


def test_list_shows_each_endpoints_state_and_deliveries(storage: Storage, pid: int) -> None:
    first = doc(storage, "webhook", "create", "http://127.0.0.1:9/a", "--project", "shop")["id"]
    second = doc(storage, "webhook", "create", "http://u:pw@127.0.0.1:9/b", "--project", "shop")
    changes(storage, pid, 1, 2)
    attempt_all(storage, "retry")
    assert doc(storage, "webhook", "disable", str(second["id"]))["enabled"] is False

    listed = doc(storage, "webhook", "list", "--project", "shop")
    assert listed[0]["deliveries"] == {"pending": 2, "delivered": 0, "dead": 0}
    assert listed[0]["failures"] == 2 and listed[0]["failing_since"] == NOW
    assert listed[1]["url"] == "http://u:***@127.0.0.1:9/b"
    assert listed[1]["disabled_reason"] == "disabled by an operator"
    lines = run(storage, "webhook", "list").output.splitlines()
    assert lines[0].split() == ["ID", "PROJECT", "URL", "PROPERTIES", "PENDING", "DEAD", "STATE"]
    assert lines[1].endswith("enabled, failing since 2033-05-18T03:33:20.000Z (2 failed)")
    assert lines[2].endswith("disabled: disabled by an operator")

    enabled = doc(storage, "webhook", "enable", str(second["id"]))
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)
    assert run(storage, "webhook", "disable", str(first)).output.strip() == (
        f"webhook {first}: disabled: disabled by an operator"
    )
    assert doc(storage, "webhook", "list", "--project", "shop")[0]["enabled"] is False


def test_deliveries_are_listed_newest_first_and_redelivered(storage: Storage, pid: int) -> None:
    wid = doc(storage, "webhook", "create", "http://127.0.0.1:9/a", "--project", "shop")["id"]
    changes(storage, pid, 1, 2, 1)
    attempt_all(storage, "dead")  # seqs 1 and 2 die; seq 3 (user 1) becomes due
    found = doc(storage, "webhook", "deliveries", str(wid))
    assert [(d["seq"], d["status"]) for d in found] == [(3, "pending"), (2, "dead"), (1, "dead")]
    assert found[1]["last_error"] == "HTTP 500" and found[1]["attempts"] == 1
    dead = doc(storage, "webhook", "deliveries", str(wid), "--status", "dead", "--limit", "1")
    assert [d["seq"] for d in dead] == [2]
    table = run(storage, "webhook", "deliveries", str(wid)).output.splitlines()
    assert table[0].split() == ["ID", "SEQ", "EUID", "STATUS", "ATTEMPTS", "WHEN", "LAST"]
    assert "next " in table[1] and "dead 2033-05-18T03:33:20.000Z  HTTP 500" in table[2]

    assert doc(storage, "webhook", "redeliver", str(dead[0]["id"])) == {"queued": 1}
    again = run(storage, "webhook", "redeliver", str(dead[0]["id"]))
    assert "is pending and due already" in again.output
    assert doc(storage, "webhook", "redeliver", "--webhook", str(wid), "--dead") == {"queued": 1}
    after = doc(storage, "webhook", "deliveries", str(wid))
    assert [(d["seq"], d["status"], d["waiting"]) for d in after] == [
        (3, "pending", True),  # behind user 1's redelivered seq 1
        (2, "pending", False),
        (1, "pending", False),
    ]
    assert run(storage, "webhook", "deliveries", str(wid), "--status", "dead").output == (
        "no deliveries\n"
    )


def test_delete_removes_an_endpoint_with_its_deliveries(storage: Storage, pid: int) -> None:
    wid = doc(storage, "webhook", "create", "http://127.0.0.1:9/a", "--project", "shop")["id"]
    changes(storage, pid, 1)
    attempt_all(storage, "retry")
    assert doc(storage, "webhook", "delete", str(wid)) == {"id": wid, "deleted": True}
    assert doc(storage, "webhook", "list") == []
    with storage.read() as tx:
        assert tx.count_rows()["deliveries"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "ftp://example.com/", "--project", "shop"], "must be http:// or https://"),
        (["create", "example.com/hook", "--project", "shop"], "must be http:// or https://"),
        (["create", "http:///nohost", "--project", "shop"], "with a host"),
        (["create", "http://169.254.169.254/", "--project", "shop"], "link-local address"),
        (["create", "http://x.io/", "--project", "nope"], "no project 'nope'"),
        (["create", "http://x.io/", "--project", "shop", "--property", "Bad Name"], "--property"),
        (["list", "--project", "nope"], "no project 'nope'"),
        (["disable", "99"], "no webhook endpoint 99"),
        (["enable", "99"], "no webhook endpoint 99"),
        (["delete", "99"], "no webhook endpoint 99"),
        (["deliveries", "99"], "no webhook endpoint 99"),
        (["redeliver", "99"], "no delivery 99"),
        (["redeliver", "--webhook", "99", "--dead"], "no webhook endpoint 99"),
    ],
)
def test_bad_input_is_a_clear_error_with_status_1(
    storage: Storage, pid: int, args: list[str], message: str
) -> None:
    result = run(storage, "webhook", *args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [["redeliver"], ["redeliver", "1", "--webhook", "1", "--dead"], ["redeliver", "--dead"]],
)
def test_redeliver_wants_one_delivery_or_an_endpoints_dead_letters(
    storage: Storage, args: list[str]
) -> None:
    result = run(storage, "webhook", *args)
    assert result.exit_code == 2 and "give DELIVERY_ID, or --webhook ID --dead" in result.output
