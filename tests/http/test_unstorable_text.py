"""Text no backend can store (U+0000, escaped lone surrogates, valid JSON both) is rejected
with its documented code wherever it appears, never a 500; and an item echoed back in
``errors`` with a lone surrogate in its name still gives a readable envelope (U+FFFD)."""

from __future__ import annotations

import pytest

from tests.support.api import Api

# Raw JSON bodies (EUID stands for the user's EUID), and the HTTP status and code expected:
# a request with one bad item is rejected whole, with that item's code.
CASES = [
    (
        "contact email with a lone surrogate",
        "/v1/user/contact",
        '{"euid": EUID, "contacts": {"email": "a\\ud800@example.com"}}',
        (400, 55102),
    ),
    (
        "contact email with U+0000",
        "/v1/user/contact",
        '{"euid": EUID, "contacts": {"email": "a\\u0000@example.com"}}',
        (400, 55102),
    ),
    (
        "contact name with a lone surrogate",
        "/v1/user/contact",
        '{"euid": EUID, "contacts": {"\\ud800": "x"}}',
        (400, 55004),
    ),
    (
        "random_id with a lone surrogate",
        "/v1/event/report",
        '{"data": [{"euid": EUID, "event_name": "e", "itime": 1, "random_id": "\\ud800"}]}',
        (400, 55004),
    ),
    (
        "random_id with U+0000",
        "/v1/event/report",
        '{"data": [{"euid": EUID, "event_name": "e", "itime": 1, "random_id": "a\\u0000"}]}',
        (400, 55004),
    ),
    (
        "app_key with a lone surrogate",
        "/v1/event/report",
        '{"app_key": "\\ud800", "data": [{"euid": EUID, "event_name": "e", "itime": 1}]}',
        (400, 55004),
    ),
    (
        "app_key with U+0000",
        "/v1/event/report",
        '{"app_key": "\\u0000", "data": [{"euid": EUID, "event_name": "e", "itime": 1}]}',
        (400, 55004),
    ),
    (
        "event name with a lone surrogate",
        "/v1/event/report",
        '{"data": [{"euid": EUID, "event_name": "\\ud800", "itime": 1}]}',
        (400, 55004),
    ),
    (
        "event property name with a lone surrogate",
        "/v1/event/report",
        '{"data": [{"euid": EUID, "event_name": "e", "itime": 1, "properties": {"\\ud800": 1}}]}',
        (400, 55102),
    ),
    (
        "event property value with a lone surrogate",
        "/v1/event/report",
        '{"data": [{"euid": EUID, "event_name": "e", "itime": 1, "properties": {"a": "\\ud800"}}]}',
        (400, 55102),
    ),
    (
        "user property name with a lone surrogate",
        "/v1/user/property",
        '{"euid": EUID, "type": "set", "properties": {"\\ud800": 1}}',
        (400, 55102),
    ),
]


@pytest.mark.parametrize(("_why", "path", "body", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_unstorable_text_is_rejected_not_a_500(
    api: Api, _why: str, path: str, body: str, expected: tuple[int, int]
) -> None:
    [euid] = await api.register("u1")
    r = await api.http.post(
        path, content=body.replace("EUID", str(euid)).encode(), headers=api.auth_header
    )
    assert (r.status_code, r.json()["code"]) == expected, r.text


async def test_an_echoed_name_with_a_lone_surrogate_reads_as_a_replacement(api: Api) -> None:
    [euid] = await api.register("u1")
    body = '{"euid": EUID, "contacts": {"em\\ud800il": "x"}}'.replace("EUID", str(euid))
    r = await api.http.post("/v1/user/contact", content=body.encode(), headers=api.auth_header)
    assert r.json()["errors"][0]["contact"] == "em\ufffdil"
