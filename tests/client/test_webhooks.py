"""verify_webhook against the reference implementation: deliveries signed by the
``standardwebhooks`` package verify, and every tampered one is refused by both."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import standardwebhooks

from userprops_client import WebhookVerificationError, verify_webhook

pytestmark = pytest.mark.unit  # no server: the client's pure parts

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
BODY = (
    b'{"type":"user.property.changed","timestamp":"2026-01-01T00:00:00Z",'
    b'"data":{"seq":1,"euid":7,"property":"spend","op":"increase","old":null,"new":9.9}}'
)


def signed(
    body: bytes = BODY, *, at: datetime | None = None, msg_id: str = "msg_1"
) -> dict[str, str]:
    at = at or datetime.now(UTC)
    signature = standardwebhooks.Webhook(SECRET).sign(msg_id, at, body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def reference_accepts(headers: dict[str, str], body: bytes) -> bool:
    try:
        standardwebhooks.Webhook(SECRET).verify(body, headers)
    except standardwebhooks.webhooks.WebhookVerificationError:
        return False
    return True


def test_a_signed_delivery_verifies_and_returns_its_payload() -> None:
    payload = verify_webhook(signed(), BODY, SECRET)
    assert payload["data"]["new"] == Decimal("9.9")
    assert verify_webhook(httpx.Headers(signed()), BODY.decode(), SECRET)["type"] == (
        "user.property.changed"
    )
    raw_key = base64.b64decode(SECRET.removeprefix("whsec_"))
    assert verify_webhook(signed(), BODY, raw_key) == payload
    assert verify_webhook(signed(), BODY, SECRET.removeprefix("whsec_")) == payload


def test_one_matching_signature_among_several_is_enough() -> None:
    headers = signed()
    good = headers["webhook-signature"]
    other = "v1," + base64.b64encode(b"x" * 32).decode()
    headers["webhook-signature"] = f"{other} v2,{good[3:]} {good}"
    assert reference_accepts(headers, BODY)
    assert verify_webhook(headers, BODY, SECRET)["data"]["euid"] == 7


def tampered() -> list[tuple[str, dict[str, str], bytes]]:
    """Every way to tamper, built when called: the times are relative to now."""
    cases = []
    headers = signed()
    cases.append(("body", headers, BODY.replace(b"9.9", b"99.9")))
    cases.append(("id", {**headers, "webhook-id": "msg_2"}, BODY))
    later = str(int(headers["webhook-timestamp"]) + 1)
    cases.append(("timestamp", {**headers, "webhook-timestamp": later}, BODY))
    sig = headers["webhook-signature"]
    flipped = sig[:-5] + ("A" if sig[-5] != "A" else "B") + sig[-4:]
    cases.append(("signature", {**headers, "webhook-signature": flipped}, BODY))
    cases.append(("version", {**headers, "webhook-signature": "v2" + sig[2:]}, BODY))
    cases.append(("no signature", {k: v for k, v in headers.items() if "sig" not in k}, BODY))
    cases.append(("no id", {k: v for k, v in headers.items() if k != "webhook-id"}, BODY))
    old = datetime.now(UTC) - timedelta(minutes=6)
    cases.append(("too old", signed(at=old), BODY))
    new = datetime.now(UTC) + timedelta(minutes=6)
    cases.append(("too new", signed(at=new), BODY))
    other_secret = standardwebhooks.Webhook(base64.b64encode(b"k" * 24).decode())
    forged = other_secret.sign("msg_1", datetime.now(UTC), BODY)
    cases.append(("other secret", {**headers, "webhook-signature": forged}, BODY))
    return cases


@pytest.mark.parametrize("what", [case[0] for case in tampered()])
def test_a_tampered_delivery_is_refused_as_the_reference_refuses_it(what: str) -> None:
    # Built in the test, not at collection: "too new" must still be too new when it runs.
    [(_, headers, body)] = [case for case in tampered() if case[0] == what]
    assert not reference_accepts(headers, body)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body, SECRET)


def test_the_tolerance_is_five_minutes_either_way_by_default() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    headers, now = signed(at=at), at.timestamp()
    assert verify_webhook(headers, BODY, SECRET, now=now + 299)
    assert verify_webhook(headers, BODY, SECRET, now=now - 299)
    for off in (301, -301):
        with pytest.raises(WebhookVerificationError, match="tolerance"):
            verify_webhook(headers, BODY, SECRET, now=now + off)
    assert verify_webhook(headers, BODY, SECRET, now=now + 3000, tolerance=3600)


@pytest.mark.parametrize(
    ("headers", "secret", "body", "match"),
    [
        ({"webhook-timestamp": "soon"}, SECRET, BODY, "epoch seconds"),
        ({}, "whsec_not*base64", BODY, "base64"),
        ({}, "whsec_", BODY, "empty"),
        ({}, SECRET, b"not json", "JSON"),
    ],
    ids=["timestamp", "secret not base64", "secret empty", "body not JSON"],  # not the secret:
    # it is random, and every test worker (pytest-xdist) must collect the same names
)
def test_malformed_parts_are_refused(
    headers: dict[str, str], secret: str, body: bytes, match: str
) -> None:
    good = signed(body)
    with pytest.raises(WebhookVerificationError, match=match):
        verify_webhook({**good, **headers}, body, secret)
