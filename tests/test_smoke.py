from __future__ import annotations

from conftest import Api


async def test_write_then_read_back(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await api.set(euid, "set", {"plan": "gold"})
    assert r.json() == {"code": 0, "message": "success"}
    assert await api.props(euid) == {"plan": "gold"}
