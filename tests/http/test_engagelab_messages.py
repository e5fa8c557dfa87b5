"""Where EngageLab documents a message, userprops answers with it verbatim: "success",
55102 "Invalid user attributes exist" and 55014 "Contact exists", the texts of EngageLab's
examples (docs/errors.md marks them). Such a message belongs to its code, on every path."""

from __future__ import annotations

import httpx
import pytest

from tests.support.api import Api
from userprops.errors import (
    CODE_TABLE,
    ENGAGELAB_MESSAGES,
    ContactExists,
    InvalidProperties,
    UserpropsError,
)

INVALID = (55102, "Invalid user attributes exist")


def code_and_message(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    return body["code"], body["message"]


def test_the_documented_texts_are_exactly_engagelabs() -> None:
    assert ENGAGELAB_MESSAGES == {
        0: "success",
        55102: "Invalid user attributes exist",
        55014: "Contact exists",
    }
    assert {e.code for e in CODE_TABLE if e.verbatim} == {55102, 55014}


@pytest.mark.parametrize("error", [InvalidProperties, ContactExists])
def test_a_documented_message_is_kept_whatever_the_raiser_says(
    error: type[UserpropsError],
) -> None:
    assert error("every item was rejected").detail == ENGAGELAB_MESSAGES[error.code]


async def test_property_and_contact_answers_carry_engagelabs_texts(api: Api) -> None:
    first, second = await api.register("a", "b")
    ok = await api.set(first, "set", {"plan": "gold"})
    assert ok.json() == {"code": 0, "message": "success"}
    assert code_and_message(await api.set(first, "increase", {"plan": 1})) == INVALID
    await api.post("/v1/user/contact", {"euid": first, "contacts": {"email": "a@example.com"}})
    taken = await api.post(
        "/v1/user/contact", {"euid": second, "contacts": {"email": "a@example.com"}}
    )
    assert code_and_message(taken) == (55014, "Contact exists")


async def test_every_item_rejected_as_55102_answers_engagelabs_text_on_any_endpoint(
    api: Api,
) -> None:
    [euid] = await api.register("a")
    contacts = await api.post(
        "/v1/user/contact", {"euid": euid, "contacts": {"email": "not an address"}}
    )
    assert code_and_message(contacts) == INVALID
    assert contacts.json()["errors"][0]["contact"] == "email"
    event = {"euid": euid, "event_name": "e", "itime": 1, "properties": {"bad": {"x": 1}}}
    events = await api.post("/v1/event/report", {"data": [event]})
    assert code_and_message(events) == INVALID
    batch = await api.post(
        "/v1/user/property/batch",
        {"updates": [{"euid": euid, "type": "set", "properties": {"bad": {"x": 1}}}]},
    )
    [answer] = batch.json()["data"]
    assert (answer["code"], answer["message"]) == INVALID
