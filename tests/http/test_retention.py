"""Event retention: the per-project setting and the sweep (called directly, no sleeping)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.support.api import Api, new_api
from userprops import admin
from userprops.errors import InvalidParameters, ProjectNotFound
from userprops.http.app import App
from userprops.retention import DAY_MS, Sweeper, sweep_events
from userprops.writer import Writer

NOW = 1_700_000_000_000


def writer_of(app: App) -> Writer:
    assert app.writer is not None
    return app.writer


async def report_at(api: Api, euid: int, *itimes: int) -> None:
    data = [{"euid": euid, "event_name": "tick", "itime": t} for t in itimes]
    assert (await api.post("/v1/event/report", {"data": data})).json()["code"] == 0


async def itimes_of(api: Api, euid: int) -> list[int]:
    r = await api.get("/v1/event/list", euid=euid, limit=500)
    return [e["itime"] for e in r.json()["data"]["events"]]


async def test_projects_keep_every_event_by_default(app: App, api: Api) -> None:
    [euid] = await api.register("u1")
    await report_at(api, euid, 0, NOW - 1000 * DAY_MS)
    assert await sweep_events(writer_of(app), NOW) == 0
    assert len(await itimes_of(api, euid)) == 2


async def test_sweep_deletes_events_older_than_the_retention(app: App, api: Api) -> None:
    [euid] = await api.register("u1")
    cutoff = NOW - 30 * DAY_MS
    await report_at(api, euid, cutoff - 1, cutoff, NOW, NOW + DAY_MS, 0)
    admin.set_event_retention(writer_of(app).storage, api.project, 30)
    assert await sweep_events(writer_of(app), NOW) == 2
    assert await itimes_of(api, euid) == [NOW + DAY_MS, NOW, cutoff]


async def test_sweep_touches_only_projects_with_a_retention(app: App, api: Api) -> None:
    other = await new_api(app, "other")
    try:
        [mine] = await api.register("u1")
        [theirs] = await other.register("u1")
        await report_at(api, mine, 0)
        await report_at(other, theirs, 0)
        admin.set_event_retention(writer_of(app).storage, api.project, 1)
        await sweep_events(writer_of(app), NOW)
        assert await itimes_of(api, mine) == []
        assert await itimes_of(other, theirs) == [0]
    finally:
        await other.http.aclose()


async def test_sweep_deletes_in_small_writer_jobs(app: App, api: Api) -> None:
    [euid] = await api.register("u1")
    await report_at(api, euid, *range(5))
    admin.set_event_retention(writer_of(app).storage, api.project, 1)
    jobs = writer_of(app).jobs
    assert await sweep_events(writer_of(app), NOW, batch=2) == 5
    assert writer_of(app).jobs - jobs == 3  # 2 + 2 + 1
    assert await itimes_of(api, euid) == []


async def test_sweep_stops_between_batches_when_asked(app: App, api: Api) -> None:
    [euid] = await api.register("u1")
    await report_at(api, euid, *range(5))
    admin.set_event_retention(writer_of(app).storage, api.project, 1)
    stop = threading.Event()
    stop.set()
    assert await sweep_events(writer_of(app), NOW, batch=2, stop=stop) == 0
    assert len(await itimes_of(api, euid)) == 5


async def test_retention_can_be_removed_again(app: App, api: Api) -> None:
    [euid] = await api.register("u1")
    await report_at(api, euid, 0)
    storage = writer_of(app).storage
    admin.set_event_retention(storage, api.project, 7)
    assert admin.event_retention(storage, api.project) == 7
    admin.set_event_retention(storage, api.project, None)
    assert admin.event_retention(storage, api.project) is None
    assert await sweep_events(writer_of(app), NOW) == 0


def test_retention_must_be_a_positive_number_of_days(app: App) -> None:
    storage = writer_of(app).storage
    admin.create_project(storage, "p")
    with pytest.raises(InvalidParameters):
        admin.set_event_retention(storage, "p", 0)
    with pytest.raises(ProjectNotFound):
        admin.set_event_retention(storage, "nope", 3)


def test_sweeper_thread_starts_and_stops_cleanly(app: App) -> None:
    assert app.sweeper is not None and app.sweeper.running  # the server runs one
    sweeper = Sweeper(writer_of(app), interval=3600)
    sweeper.start()
    assert sweeper.running
    sweeper.stop()
    assert not sweeper.running


def test_sweeper_with_zero_interval_is_disabled(app: App) -> None:
    sweeper = Sweeper(writer_of(app), interval=0)
    sweeper.start()
    assert not sweeper.running


async def test_one_sweeper_round_sweeps_as_of_now(app: App, api: Api) -> None:
    [euid] = await api.register("u1")
    await report_at(api, euid, 0, 4_102_444_800_000)  # 1970 and 2100
    admin.set_event_retention(writer_of(app).storage, api.project, 1)
    sweeper = Sweeper(writer_of(app), interval=3600)
    assert await asyncio.to_thread(sweeper.run_once) == 1
    assert await itimes_of(api, euid) == [4_102_444_800_000]


async def test_a_failed_sweeper_round_is_logged_not_raised(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    stopped = Writer(writer_of(app).storage)  # never started: every submit fails
    admin.create_project(stopped.storage, "p")
    admin.set_event_retention(stopped.storage, "p", 1)
    assert await asyncio.to_thread(Sweeper(stopped, interval=1).run_once) == 0
    assert "retention sweep failed" in caplog.text
