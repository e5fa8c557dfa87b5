"""No accepted DATETIME that cannot be read back (docs/schema.md, "DATETIME").

In a project whose time zone is ahead of UTC (``Pacific/Kiritimati``, +14:00),
``9999-12-31T23:59:59Z`` was accepted, and every read of its user then failed with a 500
(its local form lies past year 9999). DATETIME now has a range, in UTC, that has a local
form in every time zone; values stored before it read back in their UTC form."""

from __future__ import annotations

import zoneinfo
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from tests.support.api import Api, new_api
from userprops import admin
from userprops.cli import main
from userprops.config import Limits
from userprops.events import encode_properties
from userprops.http.app import App
from userprops.schema import (
    DATETIME_MAX,
    DATETIME_MIN,
    AttrType,
    Rejected,
    encode,
    parse_datetime,
    parse_value,
    read_back,
    to_json,
)
from userprops.storage import Storage, open_storage
from userprops.storage.base import NewEvent, StoredValue

ZONES = sorted(zoneinfo.available_timezones())
KIRITIMATI = zoneinfo.ZoneInfo("Pacific/Kiritimati")
US = timedelta(microseconds=1)


@pytest.mark.parametrize(
    "raw",
    [
        "9999-12-30T23:59:59.999999Z",
        "0001-01-02T00:00:00Z",
        "9999-12-31T13:59:59.999999+14:00",
        "0001-01-01T12:00:00-12:00",
        253402214399999,  # epoch ms of 9999-12-30T23:59:59.999Z
        -62135510400000,  # epoch ms of 0001-01-02T00:00:00Z
    ],
)
def test_the_ends_of_the_range_are_accepted(raw: object) -> None:
    assert DATETIME_MIN <= parse_datetime(raw, UTC) <= DATETIME_MAX


@pytest.mark.parametrize(
    "raw",
    [
        "9999-12-31T23:59:59Z",
        "9999-12-31",
        "0001-01-01T23:59:59.999999Z",
        "0001-01-01",
        "9999-12-31T00:00:00+00:00",
        253402214400000,  # epoch ms of 9999-12-31T00:00:00Z
        -62135510400001,
        2**62,
    ],
)
def test_values_outside_the_range_are_rejected(raw: object) -> None:
    with pytest.raises(Rejected, match="out of range"):
        parse_datetime(raw, UTC)


def test_a_local_time_is_checked_after_its_offset() -> None:
    """9999-12-30 23:00 in UTC-05:00 is 9999-12-31 04:00 UTC: out of range."""
    with pytest.raises(Rejected):
        parse_datetime("9999-12-30 23:00:00", zoneinfo.ZoneInfo("America/New_York"))


@settings(max_examples=300)
@given(
    instant=st.datetimes(
        min_value=DATETIME_MIN.replace(tzinfo=None), max_value=DATETIME_MAX.replace(tzinfo=None)
    ),
    zone=st.sampled_from(ZONES),
)
def test_every_accepted_value_reads_back_in_every_zone_as_the_same_instant(
    instant: datetime, zone: str
) -> None:
    tz = zoneinfo.ZoneInfo(zone)
    value = parse_value(AttrType.DATETIME, instant.isoformat() + "Z", Limits(), UTC)
    shown = to_json(AttrType.DATETIME, value, tz)
    assert parse_datetime(shown, UTC) == value  # read back, it is accepted again, unchanged


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT-14", "Etc/GMT+12", "UTC"])
@pytest.mark.parametrize("text", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00"])
def test_a_value_stored_before_the_range_reads_back_in_utc(zone: str, text: str) -> None:
    shown = read_back(AttrType.DATETIME, text, zoneinfo.ZoneInfo(zone))
    assert datetime.fromisoformat(shown) == datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("kind", "text"),
    [("DATETIME", "not a date"), ("NUMBER", "1x"), ("LIST", "[1"), ("BOGUS", "x")],
)
def test_a_stored_text_that_does_not_decode_reads_back_as_itself(kind: str, text: str) -> None:
    assert read_back(kind, text, UTC) == text


# Over HTTP, in a project at +14:00

LATE = encode(AttrType.DATETIME, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))


def store_past_the_range(storage: Storage, project_id: int, euid: int) -> None:
    """What a server before the range stored: an attribute and an event property at
    9999-12-31T23:59:59Z."""
    with storage.transaction() as tx:
        tx.define_attribute(project_id, "late", AttrType.DATETIME)
        tx.write_values({(project_id, euid, "late"): StoredValue(AttrType.DATETIME, LATE)}, set())
        tx.define_events(project_id, ["buy"])
        properties = encode_properties({"at": (AttrType.DATETIME, LATE)})
        tx.insert_events(project_id, [NewEvent(euid, "buy", 5, None, None, properties)])


@pytest.fixture
async def kiritimati(app: App) -> AsyncIterator[Api]:
    client = await new_api(app, "kiritimati", tz="Pacific/Kiritimati")
    yield client
    await client.http.aclose()


async def test_a_value_past_the_range_is_rejected_for_its_property(kiritimati: Api) -> None:
    (euid,) = await kiritimati.register("k1")
    r = await kiritimati.set(
        euid, "set", {"late": "9999-12-31T23:59:59Z", "ok": "9999-12-30T23:59:59Z"}
    )
    assert r.json()["code"] == 0
    assert [(e["property"], e["code"]) for e in r.json()["errors"]] == [("late", 55102)]
    assert await kiritimati.props(euid) == {"ok": "9999-12-31T13:59:59+14:00"}


async def test_an_event_property_past_the_range_rejects_its_event(kiritimati: Api) -> None:
    (euid,) = await kiritimati.register("k2")
    events = [
        {"euid": euid, "event_name": "buy", "itime": 1, "properties": {"at": late}}
        for late in ("2024-01-01T00:00:00Z", "9999-12-31T23:59:59Z")
    ]
    r = await kiritimati.post("/v1/event/report", {"data": events})
    assert r.json()["code"] == 0
    assert [(e["index"], e["code"]) for e in r.json()["errors"]] == [(1, 55102)]
    listed = await kiritimati.get("/v1/event/list", euid=euid)
    assert listed.status_code == 200
    assert [e["properties"] for e in listed.json()["data"]["events"]] == [
        {"at": "2024-01-01T14:00:00+14:00"}
    ]


async def test_values_stored_before_the_range_still_read_back(kiritimati: Api) -> None:
    """A user and an event list holding such values, and the CLI's views of them."""
    assert kiritimati.app.services is not None
    storage = kiritimati.app.services.storage
    (euid,) = await kiritimati.register("old")
    project = admin.list_projects(storage)[-1]
    store_past_the_range(storage, project.id, euid)
    assert await kiritimati.props(euid) == {"late": LATE}
    listed = await kiritimati.get("/v1/event/list", euid=euid)
    assert listed.json()["data"]["events"][0]["properties"] == {"at": LATE}


def test_the_cli_shows_values_stored_before_the_range(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'old.db'}"
    storage = open_storage(database)
    storage.migrate()
    project = admin.create_project(storage, "k", timezone="Pacific/Kiritimati")
    with storage.transaction() as tx:
        euid = tx.create_user(project.id)
    store_past_the_range(storage, project.id, euid)
    storage.close()
    runner = CliRunner()
    for args in (["user", "show", str(euid)], ["event", "list", str(euid)]):
        result = runner.invoke(main, [*args, "--database", database])
        assert result.exit_code == 0, result.output
        assert "9999-12-31T23:59:59+00:00" in result.output
