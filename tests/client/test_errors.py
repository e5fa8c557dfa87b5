"""The client's exception table against the server's code table, and how errors read."""

from __future__ import annotations

import pytest

import userprops_client
from userprops import errors as server_errors
from userprops_client import (
    ERROR_CLASSES,
    InvalidProperties,
    ItemError,
    RateLimited,
    TransportError,
    Unavailable,
    UserpropsError,
)

pytestmark = pytest.mark.unit  # no server: the client's pure parts

# Raised by the CLI and the admin console only: no API call answers them.
NOT_ON_THE_API = {40410, 40411, 40412, 40413, 40900}


def test_every_code_the_api_answers_has_its_own_class() -> None:
    server_codes = {cls.code for cls in server_errors.CODE_TABLE} - NOT_ON_THE_API
    assert set(ERROR_CLASSES) == server_codes
    for code, cls in ERROR_CLASSES.items():
        assert cls.code == code and issubclass(cls, UserpropsError)
        assert getattr(userprops_client, cls.__name__) is cls


def test_client_side_failures_share_the_base_and_carry_no_code() -> None:
    for cls in (
        TransportError,
        userprops_client.UnexpectedResponse,
        userprops_client.WebhookVerificationError,
    ):
        assert issubclass(cls, UserpropsError) and cls.code is None


def test_an_error_reads_with_its_code_status_and_first_items() -> None:
    items = tuple(ItemError(55102, f"bad {i}", property=f"p{i}") for i in range(5))
    error = InvalidProperties("invalid user attributes exist", status=400, errors=items)
    assert str(error) == (
        "invalid user attributes exist (code 55102, HTTP 400): p0: bad 0 (55102); "
        "p1: bad 1 (55102); p2: bad 2 (55102); and 2 more"
    )
    assert str(Unavailable("storage unavailable")) == "storage unavailable (code 50300)"
    assert str(TransportError("ConnectError: refused")) == "ConnectError: refused"
    assert RateLimited("slow down", retry_after=2.0).retry_after == 2.0
    event = ItemError.from_wire({"index": 3, "code": 55004, "message": "m", "extra": 1})
    assert (event.index, event.raw["extra"]) == (3, 1)
    assert str(UserpropsError("x", errors=(event,))) == "x: #3: m (55004)"
