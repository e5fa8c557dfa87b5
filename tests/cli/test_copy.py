"""``userprops copy``: moving a populated database from SQLite up to PostgreSQL (and back)
keeps every row, EUID and credential."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from tests.support.api import Api, asgi_client, make_settings, new_api
from userprops import admin
from userprops.cli import main
from userprops.http.app import App
from userprops.schema import AttrType, SchemaMode
from userprops.storage import open_storage
from userprops.storage.base import TABLE_COLUMNS


async def _populate(url: str) -> tuple[Api, dict[int, dict[str, object]]]:
    """A database with two projects, users with identities and values of every type, a
    strict attribute definition and a disabled data source."""
    app = App(make_settings(url))
    app.start()
    shop = await new_api(app, "shop", tz="Asia/Shanghai")
    blog = await new_api(app, "blog", SchemaMode.STRICT)
    assert app.services is not None
    storage = app.services.storage
    admin.define_attribute(storage, "blog", "visits", AttrType.NUMBER)
    retired = admin.create_datasource(storage, "blog", "retired").datasource.api_key
    admin.set_datasource_enabled(storage, retired, False)
    euids = await shop.register(*[f"user-{i}" for i in range(30)], "ünïcødé")
    for i, euid in enumerate(euids):
        await shop.set(euid, "set", {"plan": f"p{i % 3}", "score": i / 4, "vip": i % 2 == 0})
        await shop.set(euid, "add", {"tags": ["a", f"t{i}"]})
        await shop.set(euid, "set", {"seen": "2024-05-01 12:00:00"})
    [reader] = await blog.register("r1", name="anonymous_id")
    await blog.set(reader, "increase", {"visits": 3})
    for i, euid in enumerate(euids[:5]):
        r = await shop.post(
            "/v1/user/contact", {"euid": euid, "contacts": {"email": f"u{i}@x.org"}}
        )
        assert r.json()["code"] == 0, r.text
    events = [
        {"euid": euid, "event_name": "purchase", "itime": 4_102_444_800_000 + i,
         "random_id": f"order-{i}", "properties": {"amount": i, "sku": "a"}}
        for i, euid in enumerate(euids)
    ]  # fmt: skip
    r = await shop.post("/v1/event/report", {"app_key": "k", "data": events})
    assert r.json()["code"] == 0, r.text
    admin.set_event_retention(storage, "shop", 30)
    assert (await _idempotent_increase(shop, euids[0])).json()["code"] == 0
    expected = {euid: await shop.props(euid) for euid in euids}
    await blog.http.aclose()
    app.stop()
    return shop, expected


async def _idempotent_increase(api: Api, euid: int) -> httpx.Response:
    body = {"euid": euid, "type": "increase", "properties": {"retried": 1}}
    headers = {**api.auth_header, "idempotency-key": "retry-1"}
    return await api.http.post("/v1/user/property", json=body, headers=headers)


def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    store = open_storage(url)
    try:
        with store.read() as tx:
            dumped = {t: [r for chunk in tx.dump_rows(t, 7) for r in chunk] for t in TABLE_COLUMNS}
    finally:
        store.close()
    enabled = TABLE_COLUMNS["datasources"].index("enabled")
    dumped["datasources"] = [  # INTEGER 0/1 on SQLite, boolean on PostgreSQL
        (*r[:enabled], bool(r[enabled]), *r[enabled + 1 :]) for r in dumped["datasources"]
    ]
    return dumped


async def test_copy_moves_a_populated_database_to_postgresql_and_back(
    tmp_path: Path, pg_url: str
) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    shop, expected = await _populate(source)
    runner = CliRunner()

    result = runner.invoke(main, ["copy", "--from", source, "--to", pg_url, "--json"])
    assert result.exit_code == 0, result.output
    copied = json.loads(result.stdout)["copied"]
    assert copied["users"] == 32 and copied["identities"] == 32
    assert copied["datasources"] == 3 and copied["projects"] == 2
    assert copied["contacts"] == 5 and copied["events"] == 31
    assert _dump(pg_url) == _dump(source)

    back = f"sqlite:///{tmp_path / 'back.db'}"
    assert runner.invoke(main, ["copy", "--from", pg_url, "--to", back]).exit_code == 0
    assert _dump(back) == _dump(source)

    # The same credentials and EUIDs work against the copy; new EUIDs come after them.
    app = App(make_settings(pg_url))
    app.start()
    try:
        http = asgi_client(app, "http://t")
        moved = Api(http, app, shop.project, shop.api_key, shop.api_secret)
        for euid, props in expected.items():
            assert await moved.props(euid) == props
        [newcomer] = await moved.register("newcomer")
        assert newcomer > max(expected)
        assert await moved.register("user-7") == [list(expected)[7]]
        first = next(iter(expected))
        again = {"euid": first, "event_name": "purchase", "itime": 4_102_444_900_000}
        r = await moved.post("/v1/event/report", {"data": [again]})
        assert r.json()["code"] == 0, r.text  # new event ids continue after the copied ones
        # The copied idempotency key answers a retry, which is not applied again.
        assert (await _idempotent_increase(moved, first)).json()["code"] == 0
        assert await moved.props(first) == expected[first]
        await http.aclose()
    finally:
        app.stop()


async def test_copy_refuses_a_target_that_holds_data(tmp_path: Path, pg_url: str) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await _populate(source)
    runner = CliRunner()
    assert runner.invoke(main, ["project", "create", "other", "--database", pg_url]).exit_code == 0

    result = runner.invoke(main, ["copy", "--from", source, "--to", pg_url])
    assert result.exit_code == 1
    assert "not empty" in result.output
    assert [p["slug"] for p in _projects(pg_url)] == ["other"]


def _projects(url: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["project", "list", "--json", "--database", url])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]
