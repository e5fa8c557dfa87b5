"""Verifying a webhook delivery's Standard Webhooks signature."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

from userprops_client._errors import WebhookVerificationError
from userprops_client._json import loads

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix of every secret, not one)
DEFAULT_TOLERANCE = 300.0


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Any:
    """Check a delivery and return its parsed JSON payload (decimals as ``Decimal``).

    ``headers`` are the request's (names in any case); ``body`` the raw body exactly as
    received (a ``str`` is taken as its UTF-8 bytes); ``secret`` the endpoint's
    ``whsec_...`` secret (or its decoded bytes). The delivery verifies when one of the
    space-separated ``v1,<base64>`` entries of ``webhook-signature`` is the HMAC-SHA256 of
    ``{webhook-id}.{webhook-timestamp}.{body}``, compared in constant time, and
    ``webhook-timestamp`` (epoch seconds) is within ``tolerance`` seconds of ``now``
    (default: the clock), so a captured delivery cannot be replayed later.

    Raises :class:`WebhookVerificationError` otherwise: a header missing, a timestamp
    unreadable or out of tolerance, no matching signature, a secret that is not base64, or
    a signed payload that is not JSON.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
    if not timestamp.isdigit():
        raise WebhookVerificationError("webhook-timestamp is not epoch seconds")
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    payload = body.encode() if isinstance(body, str) else bytes(body)
    signed = f"{msg_id}.{timestamp}.".encode() + payload
    expected = base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest())
    matched = False
    for entry in signatures.split(" "):
        version, _, signature = entry.partition(",")
        # every entry is compared, so the time taken does not tell which one matched
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            matched = True
    if not matched:
        raise WebhookVerificationError("no matching signature")
    try:
        return loads(payload)
    except ValueError:
        raise WebhookVerificationError("the payload is not JSON") from None


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not whsec_ and base64") from None
    if not key:
        raise WebhookVerificationError("the secret is empty")
    return key
