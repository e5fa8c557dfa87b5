"""Where EngageLab documents a message, userprops answers with it verbatim."""

from __future__ import annotations

from tests.support.api import Api
from userprops.errors import ENGAGELAB_MESSAGES


async def test_the_documented_engagelab_texts_are_answered_exactly(api: Api) -> None:
    assert ENGAGELAB_MESSAGES == {
        0: "success",
        55102: "Invalid user attributes exist",
        55014: "Contact exists",
    }
    first, second = await api.register("a", "b")
    ok = await api.set(first, "set", {"plan": "gold"})
    assert ok.json() == {"code": 0, "message": "success"}
    failed = await api.set(first, "increase", {"plan": 1})
    assert (failed.json()["code"], failed.json()["message"]) == (
        55102,
        "Invalid user attributes exist",
    )
    await api.post("/v1/user/contact", {"euid": first, "contacts": {"email": "a@example.com"}})
    taken = await api.post(
        "/v1/user/contact", {"euid": second, "contacts": {"email": "a@example.com"}}
    )
    assert (taken.json()["code"], taken.json()["message"]) == (55014, "Contact exists")
