"""The console's cookies and CSRF tokens, signed with the database's console key
(:func:`userprops.operators.signing_key`).

- The session cookie carries a session's random token and an HMAC-SHA256 of it; the
  database knows the session by the token's digest (:mod:`userprops.operators`), so a
  cookie is good only while its session row lives and the signature holds.
- Before login there is no session: the login form's token is tied to a random nonce in a
  short-lived cookie of its own, so a login cannot be forged from another site either.
- A CSRF token is the HMAC of the session's token (or of the login nonce): a synchronizer
  token tied to the session, which nobody can make without the key and the HttpOnly cookie.

Cookies are ``HttpOnly``, ``SameSite=Strict``, limited to ``/admin``, and ``Secure`` when
the request came over TLS (or the ``console_secure_cookie`` setting says it always does).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from http.cookies import SimpleCookie

SESSION_COOKIE = "userprops_console"
LOGIN_COOKIE = "userprops_console_login"
LOGIN_SECONDS = 3600  # how long a login form may stay open
PATH = "/admin"


class Signer:
    """HMACs under one key, each for one purpose, so that no token stands for another."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def mac(self, purpose: str, value: str) -> str:
        digest = hmac.new(self._key, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def check(self, purpose: str, value: str, mac: str) -> bool:
        return hmac.compare_digest(self.mac(purpose, value), mac)

    def sign(self, purpose: str, value: str) -> str:
        return f"{value}.{self.mac(purpose, value)}"

    def unsign(self, purpose: str, signed: str | None) -> str | None:
        """The value of ``sign(purpose, value)``; None when missing or tampered with."""
        if not signed:
            return None
        value, _, mac = signed.rpartition(".")
        if not value or not self.check(purpose, value, mac):
            return None
        return value

    def csrf(self, session_token: str) -> str:
        return self.mac("csrf", session_token)

    def login_csrf(self, nonce: str) -> str:
        return self.mac("login-csrf", nonce)


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def parse_cookies(header: str) -> dict[str, str]:
    """Cookies of a ``Cookie`` header; a malformed header gives what could be read."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # http.cookies raises CookieError, and worse on hostile input
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def set_cookie(name: str, value: str, max_age: int, secure: bool) -> str:
    """A ``Set-Cookie`` value; ``max_age`` 0 deletes the cookie."""
    parts = [f"{name}={value}", f"Path={PATH}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
