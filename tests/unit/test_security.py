"""Security promises that need no server: secrets hashed with a salt, compared in constant
time, and database URLs shown without their password."""

from __future__ import annotations

import hmac

import pytest

from userprops import auth
from userprops.storage import redact_url


def test_the_same_secret_hashes_differently_each_time() -> None:
    assert auth.hash_secret("s" * 24) != auth.hash_secret("s" * 24)


def test_secrets_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("userprops.auth.hmac.compare_digest", spy)
    stored = auth.hash_secret("right")
    assert not auth.verify_secret("wrong", stored)
    assert len(calls) == 1


@pytest.mark.parametrize("stored", ["", "plain", "md5$aa$bb", "hmac-sha256$only-two", "a$b$c$d"])
def test_an_unreadable_stored_hash_matches_nothing(stored: str) -> None:
    assert not auth.verify_secret("anything", stored)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://app:s3cret@db:5432/up?sslmode=require",
            "postgresql://app:***@db:5432/up?sslmode=require",
        ),
        ("postgresql://app:p%40ss@db/up", "postgresql://app:***@db/up"),
        ("postgresql://app@db/up", "postgresql://app@db/up"),
        ("sqlite:////var/lib/userprops.db", "sqlite:////var/lib/userprops.db"),
    ],
)
def test_database_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
