"""The document and the server agree on what a request may hold (docs/security.md,
"The published contract, fuzzed").

schemathesis found requests the document refused and the server took: an empty property
name, ``"properties": null`` in an event, an identity value over its maxLength, an event
EUID of 2**63. The server checks each property, identity value and event on its own, so
one bad item among good ones is answered 0 with the bad one in ``errors``: the document
now says so (what it accepts, or anything else rejected alone). Query strings, which
the server took with any parameter at all, now hold only the documented ones."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from tests.support.api import Api
from userprops.http import openapi

INT64_OVER = 2**63


def accepts(schema_name: str, body: Any) -> bool:
    document = openapi.document()
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    return bool(jsonschema_rs.validator_for(root).is_valid(body))


def event(euid: int, **fields: Any) -> dict[str, Any]:
    return {"euid": euid, "event_name": "e", "itime": 1, **fields}


async def test_one_bad_item_among_good_ones_is_documented_and_answered_0(api: Api) -> None:
    (euid,) = await api.register("agree")
    cases = [
        (
            "/v1/user/property",
            "PropertyRequest",
            {"euid": euid, "type": "set", "properties": {"": 1, "ok": 1}},
        ),
        (
            "/v1/user/property",
            "PropertyRequest",
            {"euid": euid, "type": "set", "properties": {"obj": {"a": 1}, "ok": 1}},
        ),
        (
            "/v1/user/register",
            "RegisterRequest",
            {"identity_name": "user_id", "identity_values": ["x" * 257, "fine"]},
        ),
        (
            "/v1/event/report",
            "EventReport",
            {"data": [event(INT64_OVER), event(euid)]},
        ),
        (
            "/v1/event/report",
            "EventReport",
            {"data": [event(euid, itime=-1), event(euid, event_name="")]},
        ),
        (
            "/v1/user/contact",
            "ContactRequest",
            {"euid": euid, "contacts": {"email": 5, "mobile_phone": "+123456"}},
        ),
    ]
    for path, schema, body in cases:
        r = await api.post(path, body)
        assert accepts(schema, body), body
        assert r.status_code in (200, 400), r.text
        if r.status_code == 200:
            assert r.json()["errors"], r.text


async def test_properties_null_in_an_event_is_none_for_both(api: Api) -> None:
    (euid,) = await api.register("null-props")
    body = {"data": [event(euid, properties=None)]}
    assert accepts("EventReport", body)
    r = await api.post("/v1/event/report", body)
    assert r.json() == {"code": 0, "message": "success"}


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        ("PropertyRequest", {"euid": 1, "type": "set", "properties": {}}),
        ("PropertyRequest", {"euid": INT64_OVER, "type": "set", "properties": {"a": 1}}),
        ("RegisterRequest", {"identity_name": "user_id", "identity_values": []}),
        ("ContactRequest", {"euid": 1, "contacts": {"fax": "1"}}),
        ("EventReport", {"app_key": "k" * 257, "data": [event(1)]}),
        ("EventReport", {"data": []}),
    ],
)
def test_what_the_document_refuses_the_server_refuses_whole(schema: str, body: Any) -> None:
    assert not accepts(schema, body)


@pytest.mark.parametrize(
    "query",
    [
        "euid=1&limt=5",  # misspelt: had been ignored
        "euid=1&euid=2",
        "euid=1&limit=5&limit=6",
        "euid=1&limit=%C2%B2",  # "²", a digit to str.isdigit(): had been a 500
        "euid=1&limit=%D9%A3",  # an Arabic-Indic three
    ],
)
async def test_query_strings_hold_only_documented_parameters_once(api: Api, query: str) -> None:
    (euid,) = await api.register("q")
    r = await api.http.get(
        f"/v1/event/list?{query.replace('euid=1', f'euid={euid}', 1)}", headers=api.auth_header
    )
    assert (r.status_code, r.json()["code"]) == (400, 55004), r.text


async def test_the_read_endpoints_refuse_unknown_parameters_after_euid(api: Api) -> None:
    for path in ("/v1/user/property", "/v1/user/contact"):
        r = await api.http.get(f"{path}?euid=1&verbose=1", headers=api.auth_header)
        assert (r.status_code, r.json()["code"]) == (400, 55004), r.text
        r = await api.http.get(f"{path}?verbose=1", headers=api.auth_header)
        assert r.json()["code"] == 40007  # euid first, as everywhere
