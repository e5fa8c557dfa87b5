"""Fixtures of the admin console's tests: cheap password hashing in-process (the servers
these tests start use the real cost), and an operator's browser on a console on every
backend (the browser itself: tests/support/console.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.console import CHEAP, PASSWORD, Browser, browser_on
from userprops import operators
from userprops.storage import Storage


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(operators, "_hasher", lambda: CHEAP)
    monkeypatch.setattr(operators, "_decoy", lambda: CHEAP.hash("decoy-password"))
    yield


@pytest.fixture
def alice(storage: Storage) -> str:
    operators.create(storage, "alice", PASSWORD)
    return "alice"


@pytest.fixture
async def browser(storage_url: str, storage: Storage, alice: str) -> AsyncIterator[Browser]:
    """Not logged in yet; the operator ``alice`` exists."""
    async with browser_on(storage_url, storage) as b:
        yield b


@pytest.fixture
async def operator(browser: Browser) -> Browser:
    """``alice``, logged in."""
    answer = await browser.login()
    assert answer.status_code == 303, answer.text
    await browser.get("/admin/")  # for the session's CSRF token
    return browser
