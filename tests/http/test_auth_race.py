"""The failed-authentication limit holds under concurrency (docs/security.md, "Rate limits").

It used to look at the address's bucket before checking credentials and take a token only
after a failure: 1,000 guesses sent at once all passed the look before the first failure
was counted, and 486 to 625 of them were checked against a limit of 60. A token is now
taken before the check, atomically, and given back when the credentials verify."""

from __future__ import annotations

import asyncio
import base64
import threading

import pytest

from tests.support.api import Api, api_over
from userprops.auth import Authenticator, Principal
from userprops.errors import AuthenticationFailed, RateLimited
from userprops.ratelimit import RateLimits, address_key
from userprops.storage import Storage


def basic(key: str, secret: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{key}:{secret}".encode())


class HeldAuthenticator(Authenticator):
    """Counts the checks that reach the database, and holds them until ``release``."""

    def __init__(self, storage: Storage, limits: RateLimits) -> None:
        super().__init__(storage, ttl=60, limits=limits)
        self.release = threading.Event()
        self.lookups = 0
        self._count = threading.Lock()

    def _lookup(self, key: str, secret: str) -> Principal:
        with self._count:
            self.lookups += 1
        self.release.wait(30)
        return super()._lookup(key, secret)


def limits(burst: int) -> RateLimits:
    return RateLimits(auth_fail_rate=1e-9, auth_fail_burst=burst, request_rate=0, request_burst=1)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_guesses_sent_at_once_are_checked_no_more_than_the_burst(
    storage: Storage,
) -> None:
    auth = HeldAuthenticator(storage, limits(burst=60))
    guesses = [
        asyncio.ensure_future(auth.authenticate(basic("k" * 24, f"{i:024x}"), "10.0.0.1"))
        for i in range(1000)
    ]
    await settle()  # every guess has been let through or refused; none has failed yet
    auth.release.set()
    outcomes = await asyncio.gather(*guesses, return_exceptions=True)
    assert auth.lookups == 60
    assert sum(isinstance(o, AuthenticationFailed) for o in outcomes) == 60
    assert sum(isinstance(o, RateLimited) for o in outcomes) == 940


async def test_requests_with_one_header_sent_at_once_share_one_check(api: Api) -> None:
    assert api.app.services is not None
    auth = HeldAuthenticator(api.app.services.storage, limits(burst=2))
    header = basic(api.api_key, api.api_secret)
    waiting = [asyncio.ensure_future(auth.authenticate(header, "10.0.0.2")) for _ in range(200)]
    await settle()
    auth.release.set()
    principals = await asyncio.gather(*waiting)
    assert auth.lookups == 1
    assert {p.api_key for p in principals} == {api.api_key}
    # its token was given back: the address still has its whole burst of failures
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate(basic(api.api_key, "0" * 24), "10.0.0.2")
    with pytest.raises(RateLimited):
        await auth.authenticate(basic(api.api_key, "1" * 24), "10.0.0.2")


async def test_a_check_the_storage_could_not_make_gives_its_token_back(storage: Storage) -> None:
    class Failing(Authenticator):
        def _lookup(self, key: str, secret: str) -> Principal:
            raise OSError("disk")

    auth = Failing(storage, ttl=60, limits=limits(burst=1))
    for _ in range(3):
        with pytest.raises(OSError):
            await auth.authenticate(basic("k" * 24, "s" * 24), "10.0.0.3")


async def test_over_http_1000_guesses_at_once_get_at_most_60_checks(
    storage_url: str, storage: Storage
) -> None:
    # A rate that regains nothing while the test runs, however slow the machine.
    async with api_over(storage_url, storage, auth_fail_rate=1e-9) as api:
        answers = await asyncio.gather(
            *(
                api.http.get(
                    "/v1/user/property?euid=1",
                    headers={"authorization": basic(api.api_key, f"{i:024x}").decode()},
                )
                for i in range(1000)
            )
        )
    statuses = [r.status_code for r in answers]
    assert statuses.count(401) == 60
    assert statuses.count(429) == 940


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("2001:db8::1", "2001:db8::ffff:1", True),
        ("2001:db8::1", "2001:db8:0:1::1", False),
        ("::ffff:10.0.0.1", "10.0.0.1", True),
        ("10.0.0.1", "10.0.0.2", False),
        ("fe80::1%eth0", "fe80::2", True),
    ],
)
def test_an_ipv6_address_counts_by_its_64_network(one: str, other: str, same: bool) -> None:
    assert (address_key(one) == address_key(other)) is same
