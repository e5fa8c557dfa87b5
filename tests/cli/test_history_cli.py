"""The history from the command line (``user history``, ``project set
--history-retention-days``) and the history retention sweep."""

from __future__ import annotations

import json
import time
from typing import Any

from click.testing import CliRunner

from tests.support.api import Api
from userprops import admin
from userprops.cli import main
from userprops.http.app import App
from userprops.retention import DAY_MS, sweep_events


def run(app: App, *args: str) -> Any:
    assert app.services is not None
    url = app.services.storage.url
    result = CliRunner().invoke(main, [*args, "--database", url])
    return result


async def write_some(api: Api) -> int:
    [euid] = await api.register("alice")
    await api.set(euid, "set", {"plan": "free", "age": 30})
    await api.set(euid, "set", {"plan": "gold"})
    await api.set(euid, "increase", {"age": 1})
    return euid


async def test_user_history_lists_changes_newest_first(app: App, api: Api) -> None:
    euid = await write_some(api)
    result = run(app, "user", "history", str(euid))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 4
    assert "age  increase  30 -> 31  (test)" in lines[0]
    assert 'plan  set  "free" -> "gold"  (test)' in lines[1]
    assert 'plan  set  null -> "free"' in lines[3]


async def test_user_history_json_pages_and_filters(app: App, api: Api) -> None:
    euid = await write_some(api)
    result = run(app, "user", "history", str(euid), "--property", "plan", "--limit", "1", "--json")
    page = json.loads(result.output)
    assert [c["new"] for c in page["changes"]] == ["gold"]
    cursor = page["next_cursor"]
    result = run(
        app, "user", "history", str(euid), "--property", "plan", "--cursor", cursor, "--json"
    )
    assert [c["new"] for c in json.loads(result.output)["changes"]] == ["free"]


async def test_user_history_of_an_unknown_user_or_a_bad_cursor_fails(app: App, api: Api) -> None:
    result = run(app, "user", "history", "999")
    assert result.exit_code == 1 and "no user with euid 999" in result.output
    euid = await write_some(api)
    result = run(app, "user", "history", str(euid), "--cursor", "garbage")
    assert result.exit_code == 1 and "cursor" in result.output


async def test_project_set_history_retention(app: App, api: Api) -> None:
    result = run(app, "project", "set", api.project, "--history-retention-days", "7", "--json")
    assert json.loads(result.output)["history_retention_days"] == 7
    result = run(app, "project", "set", api.project, "--history-retention-days", "0", "--json")
    assert json.loads(result.output) == {
        "slug": api.project,
        "event_retention_days": None,
        "history_retention_days": None,
    }


async def test_the_sweep_deletes_changes_past_the_history_retention(app: App, api: Api) -> None:
    euid = await write_some(api)
    assert app.writer is not None and app.services is not None
    storage = app.services.storage
    now = time.time_ns() // 1_000_000
    assert await sweep_events(app.writer, now + 10 * DAY_MS) == 0  # kept by default
    admin.set_history_retention(storage, api.project, 1)
    assert await sweep_events(app.writer, now + DAY_MS // 2) == 0  # not old enough yet
    assert await sweep_events(app.writer, now + 2 * DAY_MS) == 4
    r = await api.get("/v1/user/history", euid=euid)
    assert r.json()["data"]["changes"] == []
    await api.set(euid, "set", {"plan": "free"})  # seqs go on after the sweep
    r = await api.get("/v1/changes")
    assert [c["seq"] for c in r.json()["data"]["changes"]] == [5]
