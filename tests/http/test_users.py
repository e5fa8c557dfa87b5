"""Users as a whole: lookup without creating, listing, and erasure (HTTP and CLI)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support.api import Api, new_api
from userprops.cli import main
from userprops.http.app import App


def cli(app: App, *args: str) -> Any:
    assert app.services is not None
    return CliRunner().invoke(main, [*args, "--database", app.services.storage.url])


async def lookup(api: Api, name: str, value: str) -> Any:
    return (await api.get("/v1/user/lookup", identity_name=name, identity_value=value)).json()


async def test_lookup_finds_a_user_without_creating_one(api: Api) -> None:
    [euid] = await api.register("alice")
    assert await lookup(api, "user_id", "alice") == {
        "code": 0,
        "message": "success",
        "data": {"euid": euid},
    }
    missing = await lookup(api, "user_id", "bob")
    assert missing["code"] == 40404
    assert (await lookup(api, "user_id", "bob"))["code"] == 40404  # still not created
    assert (await lookup(api, "anonymous_id", "alice"))["code"] == 40404


async def test_lookup_stays_in_its_project(app: App, api: Api) -> None:
    await api.register("alice")
    other = await new_api(app, "other")
    try:
        assert (await lookup(other, "user_id", "alice"))["code"] == 40404
    finally:
        await other.http.aclose()


@pytest.mark.parametrize(
    "params",
    [
        {"identity_name": "email", "identity_value": "x"},
        {"identity_value": "x"},
        {"identity_name": "user_id"},
        {"identity_name": "user_id", "identity_value": ""},
        {"identity_name": "user_id", "identity_value": "x" * 257},
    ],
)
async def test_a_bad_lookup_is_55004(api: Api, params: dict[str, str]) -> None:
    r = await api.get("/v1/user/lookup", **params)
    assert (r.status_code, r.json()["code"]) == (400, 55004)


async def test_erasure_removes_everything_and_frees_the_identities(api: Api) -> None:
    [euid] = await api.register("alice")
    await api.post(
        "/v1/user/register", {"identity_name": "registration_id", "identity_values": ["d1"]}
    )
    await api.set(euid, "set", {"plan": "gold", "tags": ["a"]})
    await api.post("/v1/user/contact", {"euid": euid, "contacts": {"email": "a@example.com"}})
    event = {"euid": euid, "event_name": "buy", "itime": 1, "random_id": "r1"}
    await api.post("/v1/event/report", {"data": [event]})
    before = (await api.get("/v1/changes")).json()["data"]["last_seq"]

    r = await api.post("/v1/user/delete", {"euid": euid})
    assert r.json() == {"code": 0, "message": "success"}

    for path in ("/v1/user/property", "/v1/user/contact", "/v1/event/list", "/v1/user/history"):
        r = await api.get(path, euid=euid)
        assert (r.status_code, r.json()["code"]) == (404, 40404), path
    assert (await api.set(euid, "set", {"plan": "x"})).json()["code"] == 40404
    assert (await api.post("/v1/user/delete", {"euid": euid})).json()["code"] == 40404
    assert (await lookup(api, "user_id", "alice"))["code"] == 40404
    [again] = await api.register("alice")  # the identity registers a new user
    assert again != euid
    r = await api.post("/v1/user/contact", {"euid": again, "contacts": {"email": "a@example.com"}})
    assert r.json()["code"] == 0  # the contact value is free too

    changes = (await api.get("/v1/changes")).json()["data"]["changes"]
    erased = [c for c in changes if c["seq"] > before and c["euid"] == euid]
    assert [(c["op"], c["property"], c["old"], c["new"]) for c in erased] == [
        ("user.deleted", None, None, None)
    ]
    kept = [c for c in changes if c["euid"] == euid and c["op"] != "user.deleted"]
    assert [c["property"] for c in kept] == ["plan", "tags"]  # the changes stay...
    assert all(c["old"] is None and c["new"] is None for c in kept)  # ...without values


async def test_erasure_is_limited_to_the_callers_project(app: App, api: Api) -> None:
    [euid] = await api.register("alice")
    await api.set(euid, "set", {"plan": "gold"})
    other = await new_api(app, "other")
    try:
        r = await other.post("/v1/user/delete", {"euid": euid})
        assert r.json()["code"] == 40404
    finally:
        await other.http.aclose()
    assert await api.props(euid) == {"plan": "gold"}


@pytest.mark.parametrize(
    ("body", "code"), [({}, 40007), ({"euid": "1"}, 55004), ({"euid": 0}, 55004), ([], 55004)]
)
async def test_a_bad_erasure_request(api: Api, body: Any, code: int) -> None:
    assert (await api.post("/v1/user/delete", body)).json()["code"] == code


async def test_cli_lists_looks_up_and_erases_users(app: App, api: Api) -> None:
    euids = await api.register(*(f"u{i}" for i in range(5)))
    r = cli(app, "user", "list", "--project", api.project, "--limit", "2", "--json")
    assert json.loads(r.output) == {"euids": euids[:2], "next_after": euids[1]}
    r = cli(app, "user", "list", "--project", api.project, "--after", str(euids[3]))
    assert r.output.splitlines() == [str(euids[4])]
    r = cli(app, "user", "lookup", "user_id", "u2", "--project", api.project)
    assert r.output.strip() == str(euids[2])
    await api.set(euids[2], "set", {"plan": "gold"})
    r = cli(app, "user", "delete", str(euids[2]), "--json")
    assert json.loads(r.output) == {"euid": euids[2], "project": api.project, "deleted": True}
    assert (await api.get("/v1/user/property", euid=euids[2])).json()["code"] == 40404
    feed = (await api.get("/v1/changes")).json()["data"]["changes"]
    assert (feed[-1]["op"], feed[-1]["source"]) == ("user.deleted", "cli")
    r = cli(app, "user", "delete", str(euids[2]))
    assert r.exit_code == 1 and "no user" in r.output
    r = cli(app, "user", "lookup", "user_id", "u2", "--project", api.project)
    assert r.exit_code == 1
