"""The code table."""

from __future__ import annotations

from userprops.errors import CODE_TABLE


def test_codes_are_unique_and_statuses_are_errors() -> None:
    codes = [e.code for e in CODE_TABLE]
    assert len(codes) == len(set(codes))
    assert all(400 <= e.status < 600 for e in CODE_TABLE)
