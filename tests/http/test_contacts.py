"""POST /v1/user/contact and GET /v1/user/contact, through HTTP."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.api import Api, new_api
from userprops.http.app import App


async def contact(api: Api, euid: object, contacts: object) -> httpx.Response:
    return await api.post("/v1/user/contact", {"euid": euid, "contacts": contacts})


async def contacts_of(api: Api, euid: int) -> dict[str, str]:
    r = await api.get("/v1/user/contact", euid=euid)
    assert r.json()["code"] == 0, r.text
    assert r.json()["data"]["euid"] == euid
    return r.json()["data"]["contacts"]  # type: ignore[no-any-return]


async def test_contacts_are_set_and_read_back(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await contact(
        api,
        euid,
        {
            "email": "ann@example.com",
            "mobile_phone": "+8618023456879",
            "landline_phone": "02012345678",
            "whatsapp_phone": "+447700900123",
        },
    )
    assert (r.status_code, r.json()) == (200, {"code": 0, "message": "success"})
    assert await contacts_of(api, euid) == {
        "email": "ann@example.com",
        "landline_phone": "02012345678",
        "mobile_phone": "+8618023456879",
        "whatsapp_phone": "+447700900123",
    }


async def test_contacts_not_named_are_left_as_they_are(api: Api) -> None:
    [euid] = await api.register("u1")
    await contact(api, euid, {"email": "a@example.com", "mobile_phone": "18023456879"})
    await contact(api, euid, {"email": "b@example.com"})
    assert await contacts_of(api, euid) == {
        "email": "b@example.com",
        "mobile_phone": "18023456879",
    }


async def test_empty_string_clears_a_contact(api: Api) -> None:
    [euid] = await api.register("u1")
    await contact(api, euid, {"email": "a@example.com", "mobile_phone": "18023456879"})
    r = await contact(api, euid, {"email": ""})
    assert r.json()["code"] == 0
    assert await contacts_of(api, euid) == {"mobile_phone": "18023456879"}


async def test_clearing_an_absent_contact_succeeds(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await contact(api, euid, {"whatsapp_phone": ""})
    assert r.json() == {"code": 0, "message": "success"}


async def test_a_cleared_value_can_be_bound_to_another_user(api: Api) -> None:
    first, second = await api.register("u1", "u2")
    await contact(api, first, {"email": "a@example.com"})
    await contact(api, first, {"email": "new@example.com"})
    r = await contact(api, second, {"email": "a@example.com"})
    assert r.json()["code"] == 0
    assert await contacts_of(api, second) == {"email": "a@example.com"}


async def test_value_of_another_user_is_55014_when_every_contact_is(api: Api) -> None:
    first, second = await api.register("u1", "u2")
    await contact(api, first, {"email": "a@example.com"})
    r = await contact(api, second, {"email": "a@example.com"})
    assert r.status_code == 409
    assert r.json()["code"] == 55014
    assert r.json()["errors"] == [
        {"contact": "email", "code": 55014, "message": "email belongs to another user"}
    ]
    assert await contacts_of(api, second) == {}
    assert await contacts_of(api, first) == {"email": "a@example.com"}


async def test_value_of_another_user_leaves_the_users_own_value(api: Api) -> None:
    first, second = await api.register("u1", "u2")
    await contact(api, first, {"email": "a@example.com"})
    await contact(api, second, {"email": "b@example.com"})
    r = await contact(api, second, {"email": "a@example.com"})
    assert r.json()["code"] == 55014
    assert await contacts_of(api, second) == {"email": "b@example.com"}


async def test_rebinding_ones_own_value_succeeds(api: Api) -> None:
    [euid] = await api.register("u1")
    await contact(api, euid, {"email": "a@example.com"})
    r = await contact(api, euid, {"email": "a@example.com"})
    assert r.json() == {"code": 0, "message": "success"}


async def test_one_contact_taken_is_partial_success(api: Api) -> None:
    first, second = await api.register("u1", "u2")
    await contact(api, first, {"email": "a@example.com"})
    r = await contact(api, second, {"email": "a@example.com", "mobile_phone": "18023456879"})
    assert r.status_code == 200
    body = r.json()
    assert body["code"] == 0
    assert body["message"].startswith("partial success")
    assert [(e["contact"], e["code"]) for e in body["errors"]] == [("email", 55014)]
    assert await contacts_of(api, second) == {"mobile_phone": "18023456879"}


async def test_same_value_under_another_contact_name_is_another_contact(api: Api) -> None:
    first, second = await api.register("u1", "u2")
    await contact(api, first, {"mobile_phone": "+447700900123"})
    r = await contact(api, second, {"whatsapp_phone": "+447700900123"})
    assert r.json()["code"] == 0


async def test_contact_values_are_per_project(app: App, api: Api) -> None:
    other = await new_api(app, "other")
    try:
        [mine] = await api.register("u1")
        [theirs] = await other.register("u1")
        await contact(api, mine, {"email": "a@example.com"})
        r = await contact(other, theirs, {"email": "a@example.com"})
        assert r.json()["code"] == 0
    finally:
        await other.http.aclose()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("email", "no-at-sign.example.com"),
        ("email", "two@@example.com"),
        ("email", "a@b@example.com"),
        ("email", "a@localhost"),
        ("email", "a b@example.com"),
        ("email", "@example.com"),
        ("email", "a@example..com"),
        ("email", "a@" + "x" * 250 + ".com"),
        ("mobile_phone", "phone"),
        ("mobile_phone", "180-2345-6879"),
        ("mobile_phone", "123"),
        ("mobile_phone", "1" * 21),
        ("landline_phone", "++4420"),
        ("whatsapp_phone", " +447700900123"),
        ("whatsapp_phone", 447700900123),
        ("email", None),
        ("email", ["a@example.com"]),
    ],
)
async def test_implausible_contact_is_55102(api: Api, name: str, value: object) -> None:
    [euid] = await api.register("u1")
    r = await contact(api, euid, {name: value})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == 55102
    [item] = body["errors"]
    assert (item["contact"], item["code"]) == (name, 55102)
    assert await contacts_of(api, euid) == {}


async def test_implausible_and_taken_contacts_together_are_55102(api: Api) -> None:
    first, second = await api.register("u1", "u2")
    await contact(api, first, {"email": "a@example.com"})
    r = await contact(api, second, {"mobile_phone": "x", "email": "a@example.com"})
    assert r.status_code == 400
    assert r.json()["code"] == 55102
    assert [(e["contact"], e["code"]) for e in r.json()["errors"]] == [
        ("mobile_phone", 55102),
        ("email", 55014),
    ]


async def test_errors_come_in_the_order_of_the_request(api: Api) -> None:
    first, second = await api.register("u1", "u2")
    await contact(api, first, {"email": "a@example.com"})
    r = await contact(api, second, {"email": "a@example.com", "mobile_phone": "x"})
    assert [e["contact"] for e in r.json()["errors"]] == ["email", "mobile_phone"]


async def test_unknown_contact_name_rejects_the_whole_request(api: Api) -> None:
    [euid] = await api.register("u1")
    r = await contact(api, euid, {"email": "a@example.com", "fax": "12345"})
    assert r.status_code == 400
    assert r.json()["code"] == 55004
    assert r.json()["errors"] == [
        {"contact": "fax", "code": 55004, "message": "unknown contact name"}
    ]
    assert await contacts_of(api, euid) == {}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([], 55004),
        ({"contacts": {"email": "a@example.com"}}, 40007),
        ({"euid": None, "contacts": {"email": "a@example.com"}}, 40007),
        ({"euid": "", "contacts": {"email": "a@example.com"}}, 40007),
        ({"euid": "1", "contacts": {"email": "a@example.com"}}, 55004),
        ({"euid": 0, "contacts": {"email": "a@example.com"}}, 55004),
        ({"euid": 1.5, "contacts": {"email": "a@example.com"}}, 55004),
        ({"euid": 1}, 55004),
        ({"euid": 1, "contacts": {}}, 55004),
        ({"euid": 1, "contacts": ["email"]}, 55004),
        ({"euid": 1, "contacts": "a@example.com"}, 55004),
    ],
)
async def test_request_shape_errors(api: Api, body: object, code: int) -> None:
    r = await api.post("/v1/user/contact", body)
    assert r.status_code == 400
    assert r.json()["code"] == code


async def test_unknown_euid_is_404(api: Api) -> None:
    r = await contact(api, 999_999, {"email": "a@example.com"})
    assert r.status_code == 404
    assert r.json()["code"] == 40404


async def test_unknown_euid_comes_before_contact_checks(api: Api) -> None:
    r = await contact(api, 999_999, {"email": "not-an-email"})
    assert (r.status_code, r.json()["code"]) == (404, 40404)


async def test_user_of_another_project_does_not_exist(app: App, api: Api) -> None:
    other = await new_api(app, "other")
    try:
        [theirs] = await other.register("u1")
        r = await contact(api, theirs, {"email": "a@example.com"})
        assert r.status_code == 404
        r = await api.get("/v1/user/contact", euid=theirs)
        assert r.status_code == 404
    finally:
        await other.http.aclose()


async def test_contact_endpoints_need_credentials(api: Api) -> None:
    r = await api.http.post("/v1/user/contact", json={"euid": 1, "contacts": {"email": ""}})
    assert (r.status_code, r.json()["code"]) == (401, 40050)
    r = await api.http.get("/v1/user/contact", params={"euid": 1})
    assert (r.status_code, r.json()["code"]) == (401, 40050)


@pytest.mark.parametrize(("query", "code"), [({}, 40007), ({"euid": "abc"}, 55004)])
async def test_read_needs_a_valid_euid(api: Api, query: dict[str, str], code: int) -> None:
    r = await api.get("/v1/user/contact", **query)
    assert r.json()["code"] == code


async def test_concurrent_binding_of_one_value_leaves_exactly_one_holder(api: Api) -> None:
    euids = await api.register(*(f"u{i}" for i in range(8)))
    answers = await asyncio.gather(
        *(contact(api, e, {"email": "shared@example.com"}) for e in euids for _ in range(3))
    )
    codes = [r.json()["code"] for r in answers]
    holders = [e for e in euids if (await contacts_of(api, e)) == {"email": "shared@example.com"}]
    assert len(holders) == 1
    assert codes.count(0) == 3  # the holder's three requests
    assert codes.count(55014) == len(codes) - 3
