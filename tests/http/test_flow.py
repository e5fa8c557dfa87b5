"""End to end, as a business system drives it: register a user, set attributes, set
contacts, report events, then read everything back, through the HTTP API."""

from __future__ import annotations

import uuid

from tests.support.api import Api


async def test_register_property_contact_event_read_back(api: Api) -> None:
    r = await api.post(
        "/v1/user/register", {"identity_name": "user_id", "identity_values": ["crm-1001"]}
    )
    assert r.json()["code"] == 0
    euid = r.json()["data"][0]["euid"]

    r = await api.set(euid, "set", {"plan": "gold", "signup_at": "2024-05-01 10:00:00"})
    assert r.json() == {"code": 0, "message": "success"}
    r = await api.set(euid, "increase", {"orders": 1})
    assert r.json()["code"] == 0

    r = await api.post(
        "/v1/user/contact",
        {"euid": euid, "contacts": {"mobile_phone": "18023456879", "email": "12@gmail.com"}},
    )
    assert r.json() == {"code": 0, "message": "success"}

    order_id = str(uuid.uuid4())
    report = {
        "app_key": "96441e4d73207a6517abfbbc",
        "data": [
            {"euid": euid, "event_name": "sign_up", "itime": 1654076420235, "properties": {}},
            {
                "euid": euid,
                "event_name": "purchase",
                "itime": 1654076420772,
                "random_id": order_id,
                "properties": {"amount": 46.2, "items": ["test1", "20231025"], "gift": False},
            },
        ],
    }
    assert (await api.post("/v1/event/report", report)).json()["code"] == 0
    # The integration retries after a timeout: the same random_id is acknowledged again.
    assert (await api.post("/v1/event/report", report)).json()["code"] == 0

    assert await api.props(euid) == {
        "plan": "gold",
        "signup_at": "2024-05-01T10:00:00+00:00",
        "orders": 1,
    }
    r = await api.get("/v1/user/contact", euid=euid)
    assert r.json()["data"] == {
        "euid": euid,
        "contacts": {"email": "12@gmail.com", "mobile_phone": "18023456879"},
    }
    r = await api.get("/v1/event/list", euid=euid)
    events = r.json()["data"]["events"]
    assert [(e["event_name"], e["random_id"]) for e in events] == [
        ("purchase", order_id),
        ("sign_up", None),
        ("sign_up", None),  # no random_id, so the retry stored it again
    ]
    assert events[0]["properties"] == {
        "amount": 46.2,
        "items": ["test1", "20231025"],
        "gift": False,
    }
    assert events[0]["app_key"] == "96441e4d73207a6517abfbbc"
