"""verify_webhook on real deliveries: the package's server POSTs a change to a receiver
on 127.0.0.1, and the client's verify_webhook accepts it as sent and refuses it altered."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.support.liveserver import Server
from tests.support.receiver import receiving
from tests.support.serverproc import cli
from userprops_client import Client, WebhookVerificationError, verify_webhook


def test_verify_webhook_accepts_a_real_delivery_and_refuses_it_altered(server: Server) -> None:
    with receiving() as receiver:
        created = cli(server.database, "webhook", "create", receiver.url, "--project", "live")
        assert isinstance(created, dict)
        secret = created["secret"]
        try:
            with Client(server.api_key, server.api_secret, base_url=server.url) as up:
                euid = up.register("user_id", ["webhook-client"])["webhook-client"]
                up.increase(euid, {"spend": Decimal("9.9")})
            [got] = receiver.wait_for(lambda r: len(r) == 1, "the delivery")
        finally:
            cli(server.database, "webhook", "delete", str(created["id"]))

    payload = verify_webhook(got.headers, got.body, secret)
    assert payload["type"] == "user.property.changed"
    assert payload["data"]["euid"] == euid and payload["data"]["new"] == Decimal("9.9")
    with pytest.raises(WebhookVerificationError):
        verify_webhook(got.headers, got.body.replace(b"9.9", b"99.9"), secret)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(got.headers, got.body, "whsec_" + "A" * 43 + "=")
