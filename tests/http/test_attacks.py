"""What a second round of attacks found (docs/security.md): a forged cursor that was a 500,
a LIST that an authenticated client could grow without end (stalling every project's
writes in the one writer thread), and event pages that could hold 500 MiB."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.api import Api, api_over
from userprops import admin
from userprops.cli import main
from userprops.eventlist import PAGE_BYTES
from userprops.events import encode_properties
from userprops.schema import AttrType, encode
from userprops.storage import Storage, open_storage
from userprops.storage.base import NewEvent, StoredValue


@pytest.fixture
async def app_limits(storage_url: str, storage: Storage) -> AsyncIterator[Api]:
    """An API whose stored lists may hold 10 elements."""
    async with api_over(storage_url, storage, max_stored_list_length=10) as client:
        yield client


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "position", ["1:9999999999999999999", "1:9223372036854775808", "9999999999999999:1"]
)
async def test_a_forged_cursor_is_55004_or_an_empty_page_never_a_500(
    api: Api, position: str
) -> None:
    (euid,) = await api.register("cursor")
    r = await api.get("/v1/event/list", euid=euid, cursor=cursor(position))
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert r.json()["code"] == 55004


async def test_add_grows_a_list_to_its_stored_limit_and_no_further(app_limits: Api) -> None:
    api = app_limits
    (euid,) = await api.register("grow")
    first = await api.set(euid, "add", {"tags": [f"a{i}" for i in range(8)]})
    assert first.json()["code"] == 0
    r = await api.set(euid, "add", {"tags": ["b1", "b2", "b3"], "other": ["x"]})
    assert r.json()["code"] == 0
    assert [(e["property"], e["code"]) for e in r.json()["errors"]] == [("tags", 55102)]
    assert "10" in r.json()["errors"][0]["message"]
    tags = (await api.props(euid))["tags"]
    assert isinstance(tags, list) and len(tags) == 8  # unchanged
    fits = await api.set(euid, "add", {"tags": ["b1", "b2", "a0"]})  # 10 exactly
    assert fits.json()["code"] == 0
    removed = await api.set(euid, "remove", {"tags": ["a0"]})
    assert removed.json()["code"] == 0


async def test_an_event_page_stops_at_its_byte_budget_and_the_cursor_walks_on(
    api: Api,
) -> None:
    (euid,) = await api.register("big-events")
    assert api.app.services is not None
    storage = api.app.services.storage
    project = next(p for p in admin.list_projects(storage) if p.slug == api.project)
    tags = encode(AttrType.LIST, tuple(f"{i:03d}" + "x" * 252 for i in range(500)))
    properties = encode_properties({"tags": (AttrType.LIST, tags)})
    count = 3 * PAGE_BYTES // len(properties) + 5  # more than three pages' worth
    with storage.transaction() as tx:
        tx.define_events(project.id, ["big"])
        tx.insert_events(
            project.id, [NewEvent(euid, "big", i, None, None, properties) for i in range(count)]
        )
    seen: list[int] = []
    token = None
    while True:
        params: dict[str, str | int] = {"euid": euid, "limit": 500}
        if token:
            params["cursor"] = token
        r = await api.http.get("/v1/event/list", params=params, headers=api.auth_header)
        data = r.json()["data"]
        assert len(r.content) < 2 * PAGE_BYTES
        assert len(data["events"]) * len(properties) <= PAGE_BYTES
        seen += [e["itime"] for e in data["events"]]
        token = data["next_cursor"]
        if token is None:
            break
    assert seen == list(range(count - 1, -1, -1))  # every event once, newest first


async def test_a_lone_surrogate_named_property_with_an_idempotency_key_is_replayed(
    api: Api,
) -> None:
    """The rejected item echoes the name as sent; storing that answer under the key had
    been a 500 (a lone surrogate cannot be encoded)."""
    (euid,) = await api.register("surrogate")
    body = b'{"euid": %d, "type": "set", "properties": {"\\ud800": 1, "ok": 2}}' % euid
    headers = {**api.auth_header, "idempotency-key": "surrogate-1"}
    answers = [
        await api.http.post("/v1/user/property", content=body, headers=headers) for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].content == answers[1].content
    assert answers[0].json()["errors"][0]["property"] == "\ufffd"
    assert await api.props(euid) == {"ok": 2}


def test_the_cli_writes_end_users_text_with_its_escape_sequences_escaped(tmp_path: Path) -> None:
    """An identity value, contact or value holding an escape sequence had reached the
    operator's terminal as is (a window title, the clipboard, earlier lines rewritten)."""
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    storage = open_storage(database)
    storage.migrate()
    project = admin.create_project(storage, "p")
    hostile = "\x1b]52;c;cHduZWQ=\x07\x1b[2J\x9b31m\u202eevil"
    with storage.transaction() as tx:
        euid = tx.create_user(project.id)
        tx.bind_identity(project.id, "user_id", hostile, euid)
        tx.define_attribute(project.id, "note", AttrType.STRING)
        tx.write_values({(project.id, euid, "note"): StoredValue(AttrType.STRING, hostile)}, set())
    storage.close()
    result = CliRunner().invoke(main, ["user", "show", str(euid), "--database", database])
    assert result.exit_code == 0, result.output
    assert all(c.isprintable() for line in result.output.splitlines() for c in line)
    assert "\\x1b]52;c;cHduZWQ=\\x07" in result.output
