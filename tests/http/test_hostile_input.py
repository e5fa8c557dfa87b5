"""Hostile input in the body, the query and the headers, in-process: each gets its
documented answer (docs/security.md), never a 500, never a half-applied write. What only a
socket shows: tests/e2e/test_hostile_input.py."""

from __future__ import annotations

import httpx
import pytest

from tests.support.api import Api

EUID = b"@EUID@"


def body(properties: bytes, head: bytes = b'"euid":@EUID@,"type":"set"') -> bytes:
    return b"{" + head + b',"properties":{' + properties + b"}}"


# (raw body with @EUID@ for the user's EUID, expected code, the properties read back)
JSON_CASES: dict[str, tuple[bytes, int, dict[str, object]]] = {
    "invalid UTF-8": (body(b'"s":"\xff\xfe"'), 55004, {}),
    "overlong UTF-8": (body(b'"s":"\xc0\xaf"'), 55004, {}),
    "lone surrogate, escaped": (body(b'"s":"\\ud800"'), 55102, {}),
    "lone surrogate in a name": (body(b'"\\udc00":"x"'), 55102, {}),
    "lone surrogate beside a good property": (body(b'"s":"\\ud800","ok":"y"'), 0, {"ok": "y"}),
    "lone surrogate, raw bytes": (body(b'"s":"\xed\xa0\x80"'), 55004, {}),
    "a surrogate pair is fine": (body(b'"s":"\\ud83d\\ude00"'), 0, {"s": "\U0001f600"}),
    "U+0000 in a string": (body(b'"s":"a\\u0000b"'), 55102, {}),
    "U+0000 in a list element": (body(b'"l":["a\\u0000"]'), 55102, {}),
    "U+0000 in a name": (body(b'"a\\u0000":"x"'), 55102, {}),
    "U+0000 beside a good property": (body(b'"s":"\\u0000","ok":"y"'), 0, {"ok": "y"}),
    "deeply nested arrays": (body(b'"s":' + b"[" * 100_000 + b"]" * 100_000), 55004, {}),
    "deeply nested objects": (body(b'"s":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000), 55004, {}),
    "nested but shallow object value": (body(b'"s":{"a":1}'), 55102, {}),
    "1e400": (body(b'"n":1e400'), 55102, {}),
    "-1e400": (body(b'"n":-1e400'), 55102, {}),
    "1e-400": (body(b'"n":1e-400'), 55102, {}),
    "2**70": (body(b'"n":1180591620717411303424'), 55102, {}),
    "2**63 - 1 is fine": (body(b'"n":9223372036854775807'), 0, {"n": 9223372036854775807}),
    "euid 2**70": (body(b'"n":1', b'"euid":1180591620717411303424,"type":"set"'), 55004, {}),
    "euid 1e400": (body(b'"n":1', b'"euid":1e400,"type":"set"'), 55004, {}),
    "NaN": (body(b'"n":NaN'), 55004, {}),
    "Infinity": (body(b'"n":Infinity'), 55004, {}),
    "-Infinity": (body(b'"n":-Infinity'), 55004, {}),
    "duplicate property: last wins": (body(b'"d":"first","d":"last"'), 0, {"d": "last"}),
    "duplicate type: last wins": (
        body(b'"d":"x"', b'"euid":@EUID@,"type":"delete","type":"set"'),
        0,
        {"d": "x"},
    ),
    "byte order mark": (b"\xef\xbb\xbf" + body(b'"s":"x"'), 55004, {}),
    "trailing garbage": (body(b'"s":"x"') + b"}", 55004, {}),
    "two documents": (body(b'"s":"x"') + body(b'"t":"y"'), 55004, {}),
    "empty body": (b"", 55004, {}),
    "whitespace only": (b" \r\n\t", 55004, {}),
    "top-level array": (b"[" + body(b'"s":"x"') + b"]", 55004, {}),
    "a JSON string": (b'"{}"', 55004, {}),
    "single quotes": (body(b"'s':'x'"), 55004, {}),
    "comments": (body(b'/* hi */ "s":"x"'), 55004, {}),
}


@pytest.mark.parametrize("case", list(JSON_CASES))
async def test_hostile_json_gets_its_documented_answer(api: Api, case: str) -> None:
    raw, code, stored = JSON_CASES[case]
    [euid] = await api.register("u1")
    r = await api.http.post(
        "/v1/user/property",
        content=raw.replace(EUID, str(euid).encode()),
        headers={**api.auth_header, "content-type": "application/json"},
    )
    assert r.json()["code"] == code, r.text
    assert r.status_code == (200 if code == 0 else 400)
    assert await api.props(euid) == stored


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/xml", "garbage/;;"],
)
async def test_the_body_is_json_whatever_the_content_type_says(
    api: Api, content_type: str | None
) -> None:
    [euid] = await api.register("u1")
    headers = dict(api.auth_header)
    if content_type is not None:
        headers["content-type"] = content_type
    raw = b'{"euid":%d,"type":"set","properties":{"s":"x"}}' % euid
    r = await api.http.post("/v1/user/property", content=raw, headers=headers)
    assert r.json() == {"code": 0, "message": "success"}


async def test_identity_values_with_hostile_strings_are_rejected_by_index(api: Api) -> None:
    raw = b'{"identity_name":"user_id","identity_values":["ok","a\\u0000b",1e400,null]}'
    r = await api.http.post("/v1/user/register", content=raw, headers=api.auth_header)
    assert r.json()["code"] == 0
    assert [e["index"] for e in r.json()["errors"]] == [1, 2, 3]
    assert [d["identity_value"] for d in r.json()["data"]] == ["ok"]


async def test_hostile_query_strings_are_55004_or_40007(api: Api) -> None:
    for query, code in [
        (b"euid=%ff%fe", 55004),
        (b"euid=%00", 55004),
        (b"euid=1e400", 55004),
        (b"euid=99999999999999999999", 55004),
        (b"euid=", 40007),
        (b"euid", 40007),
        (b"euid=-1", 55004),
        (b"%%%", 40007),
    ]:
        url = httpx.URL("/v1/user/property", query=query)
        r = await api.http.get(url, headers=api.auth_header)
        assert r.json()["code"] == code, query


async def test_too_many_headers_get_431(api: Api) -> None:
    headers = {**api.auth_header, **{f"x-h{i}": "v" * 100 for i in range(1000)}}
    r = await api.http.get("/v1/user/property?euid=1", headers=headers)
    assert (r.status_code, r.json()["code"]) == (431, 43100)
    assert r.headers["connection"] == "close"
