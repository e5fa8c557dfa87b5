"""API credentials: generation, keyed hashing, and HTTP Basic authentication.

A secret is stored only as ``hmac-sha256$<salt>$<digest>`` (HMAC-SHA256 keyed with a
random per-secret salt) and compared in constant time. Secrets are 96 random bits, so a
fast keyed hash is enough; a slow password hash would only slow every cache miss.

Verified credentials are cached in memory for ``auth_cache_ttl`` seconds. Disabling a data
source or rotating its secret through :mod:`userprops.admin` takes effect at once in the
process that made the change (:func:`forget`), and within that time in every other server
process; changing its project's settings, within that time everywhere.
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import hashlib
import hmac
import secrets
import time
import weakref
from dataclasses import dataclass
from datetime import tzinfo

from userprops.errors import AuthenticationFailed
from userprops.ratelimit import UNLIMITED, RateLimits
from userprops.schema import SchemaMode, check_timezone
from userprops.storage.base import Storage

_CACHE_MAX = 10_000


@dataclass(frozen=True)
class Principal:
    """Who is calling: a data source, and the project it acts in."""

    datasource_id: int
    api_key: str
    project_id: int
    schema_mode: SchemaMode
    tz: tzinfo
    source: str = "api"  # the data source's name: who wrote, in the history


def new_key() -> str:
    """24 lowercase hex characters, like EngageLab's keys and secrets."""
    return secrets.token_hex(12)


def hash_secret(secret: str) -> str:
    salt = secrets.token_hex(16)
    digest = hmac.new(salt.encode(), secret.encode(), hashlib.sha256).hexdigest()
    return f"hmac-sha256${salt}${digest}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of a secret against its stored hash."""
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "hmac-sha256":
        return False
    candidate = hmac.new(salt.encode(), secret.encode("utf-8", "replace"), hashlib.sha256)
    return hmac.compare_digest(candidate.hexdigest(), digest)


def parse_basic(header: bytes | None) -> tuple[str, str]:
    """``Basic base64(key:secret)`` → (key, secret). The scheme is case-insensitive;
    anything else (no header, bad base64, not UTF-8, no colon, an empty part) fails."""
    if not header:
        raise AuthenticationFailed("missing Authorization header")
    scheme, _, token = header.strip().partition(b" ")
    if scheme.lower() != b"basic" or not token.strip():
        raise AuthenticationFailed("expected HTTP Basic credentials")
    try:
        decoded = binascii.a2b_base64(token.strip(), strict_mode=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise AuthenticationFailed("malformed Basic credentials") from None
    key, colon, secret = decoded.partition(":")
    if not colon or not key or not secret:
        raise AuthenticationFailed("malformed Basic credentials")
    return key, secret


_AUTHENTICATORS: weakref.WeakSet[Authenticator] = weakref.WeakSet()


def forget(api_key: str) -> None:
    """Drop what every authenticator of this process cached for ``api_key``: its data
    source was just disabled or its secret rotated."""
    for authenticator in list(_AUTHENTICATORS):
        authenticator.forget(api_key)


def _canonical(header: bytes) -> bool:
    """Whether a verified header is worth caching: ``Basic <token>`` with one space, as
    clients send it, and short. A client holding a secret could otherwise fill the cache
    with variants (other cases of the scheme, up to 64 KiB of spaces), each its own entry:
    10,000 of 60 KiB would be 600 MB. Variants still work; they are checked every time."""
    return len(header) <= 128 and header.startswith(b"Basic ") and header.count(b" ") == 1


class Authenticator:
    def __init__(self, storage: Storage, ttl: float, limits: RateLimits = UNLIMITED) -> None:
        self._storage = storage
        self._ttl = ttl
        self._limits = limits
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._checking: dict[bytes, asyncio.Future[Principal]] = {}
        self._forgotten = 0  # how many times :meth:`forget` ran: a check older is not cached
        _AUTHENTICATORS.add(self)

    def forget(self, api_key: str) -> None:
        """Drop the cached credentials of ``api_key``, and keep a check under way from
        caching what it read before (may be called from any thread)."""
        self._forgotten += 1
        for header, (principal, _) in list(self._cache.items()):
            if principal.api_key == api_key:
                self._cache.pop(header, None)

    def cached(self, header: bytes | None) -> Principal | None:
        """The principal of an Authorization header verified less than ``ttl`` seconds
        ago (:class:`RateLimited` when its data source sent too many requests), else None:
        the hot path's check, without a coroutine."""
        hit = self._cache.get(header) if header is not None else None
        if hit is None or hit[1] <= time.monotonic():
            return None
        self._limits.request(hit[0].datasource_id)
        return hit[0]

    async def authenticate(self, header: bytes | None, client: str | None = None) -> Principal:
        """The principal of an Authorization header, or :class:`AuthenticationFailed`;
        :class:`RateLimited` when ``client`` (an address) failed too often, or the data
        source sent too many requests (see :mod:`userprops.ratelimit`).

        Requests that arrive together with the same header share one check (and one
        token of the address's failures): a client opening many connections at once
        spends one, and one wrong guess sent many times counts once."""
        principal = self.cached(header)
        if principal is not None:
            return principal
        if header is None:
            header = b""
        check = self._checking.get(header)
        if check is None:
            self._limits.reserve_failure(client)
            check = asyncio.ensure_future(self._check(header, client))
            self._checking[header] = check
            check.add_done_callback(functools.partial(self._checked, header))
        principal = await asyncio.shield(check)
        self._limits.request(principal.datasource_id)
        return principal

    async def _check(self, header: bytes, client: str | None) -> Principal:
        """Verify ``header`` against the database; the address's token is given back when
        it verifies, or when the check could not be made (the storage failed)."""
        forgotten = self._forgotten
        try:
            key, secret = parse_basic(header)
            principal = await asyncio.to_thread(self._lookup, key, secret)
        except AuthenticationFailed:
            raise
        except BaseException:
            self._limits.refund_failure(client)
            raise
        self._limits.refund_failure(client)
        if forgotten != self._forgotten:  # a data source changed while this one was read
            return principal
        if not _canonical(header):
            return principal  # verified, but not kept: see _canonical
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[header] = (principal, time.monotonic() + self._ttl)
        return principal

    def _checked(self, header: bytes, check: asyncio.Future[Principal]) -> None:
        if self._checking.get(header) is check:
            del self._checking[header]
        if not check.cancelled():
            check.exception()  # retrieved here, so a check nobody awaits any more is quiet

    def _lookup(self, key: str, secret: str) -> Principal:
        with self._storage.read() as tx:
            ds = tx.get_datasource(key)
            project = None if ds is None else tx.get_project_by_id(ds.project_id)
        if ds is None or project is None:
            # Spend the same work as a real check, so timing does not tell keys apart.
            verify_secret(secret, "hmac-sha256$00$00")
            raise AuthenticationFailed()
        if not verify_secret(secret, ds.secret_hash) or not ds.enabled:
            raise AuthenticationFailed()
        return Principal(
            ds.id,
            ds.api_key,
            project.id,
            project.schema_mode,
            check_timezone(project.timezone),
            ds.name,
        )
