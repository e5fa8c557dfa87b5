"""Which contact values are plausible (the HTTP answers to the others: tests/http)."""

from __future__ import annotations

import pytest

from userprops.contacts import check_contact
from userprops.schema import Rejected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("email", "first.last+tag@mail.example.co.uk"),
        ("email", "UPPER@Example.COM"),
        ("mobile_phone", "18023456879"),
        ("mobile_phone", "+8618023456879"),
        ("landline_phone", "1234"),
        ("whatsapp_phone", "+" + "9" * 20),
    ],
)
def test_plausible_contacts_pass_as_given(name: str, value: str) -> None:
    assert check_contact(name, value) == value


def test_empty_string_is_a_plausible_clear() -> None:
    assert check_contact("email", "") == ""
    with pytest.raises(Rejected):
        check_contact("email", 5)
