"""The event list's cursor, decoded."""

from __future__ import annotations

from userprops.eventlist import decode_cursor


def test_cursor_decodes_only_what_the_server_hands_out() -> None:
    assert decode_cursor("MTIzOjQ1") == (123, 45)  # base64url of "123:45"
