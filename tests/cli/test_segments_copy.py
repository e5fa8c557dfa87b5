"""``userprops copy`` moves saved segments, their members, sort keys and list elements: a
copied database answers segment queries and keeps membership as the original did."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tests.support.api import Api, asgi_client, make_settings, new_api
from userprops.cli import main
from userprops.http.app import App


async def test_segments_survive_a_copy_to_postgresql(tmp_path: Path, pg_url: str) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    app = App(make_settings(source))
    app.start()
    shop = await new_api(app, "shop")
    euids = await shop.register("a", "b", "c")
    for euid, (age, tags) in zip(euids, [(10, ["x"]), (30, ["x", "y"]), (50, ["y"])], strict=True):
        await shop.set(euid, "set", {"age": age, "tags": tags})
    where = {
        "and": [
            {"property": "age", "op": "gte", "value": 18},
            {"property": "tags", "op": "has", "value": "y"},
        ]
    }
    r = await shop.post("/v1/segment", {"name": "grown", "where": where})
    assert r.json()["data"]["count"] == 2
    await shop.http.aclose()
    app.stop()

    result = CliRunner().invoke(main, ["copy", "--from", source, "--to", pg_url])
    assert result.exit_code == 0, result.output

    app = App(make_settings(pg_url))
    app.start()
    try:
        http = asgi_client(app)
        moved = Api(http, app, "shop", shop.api_key, shop.api_secret)
        members = await moved.get("/v1/segment/members", name="grown")
        assert members.json()["data"]["euids"] == euids[1:]
        query = await moved.post("/v1/segment/query", {"where": where})
        assert query.json()["data"]["euids"] == euids[1:]
        await moved.set(euids[0], "add", {"tags": ["y"]})
        await moved.set(euids[0], "increase", {"age": 10})
        for euid in euids:  # each copied member knows its segments, and can leave them
            segs = (await moved.get("/v1/user/segments", euid=euid)).json()["data"]["segments"]
            assert segs == ["grown"]
        await moved.set(euids[2], "remove", {"tags": ["y"]})
        members = await moved.get("/v1/segment/members", name="grown")
        assert members.json()["data"]["euids"] == euids[:2]
        left = await moved.get("/v1/user/segments", euid=euids[2])
        assert left.json()["data"] == {"euid": euids[2], "segments": []}
        another = await moved.post(
            "/v1/segment", {"name": "young", "where": {"property": "age", "op": "lt", "value": 40}}
        )
        assert another.json()["data"] == {"name": "young", "created": True, "count": 2}
        await http.aclose()
    finally:
        app.stop()
