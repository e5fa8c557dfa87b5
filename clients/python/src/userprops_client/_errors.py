"""The client's exceptions: one class per wire code, under one base.

A failure answer's ``code`` is rebuilt into its class (:func:`error_from_answer`); a code
this version does not know becomes a plain :class:`UserpropsError` carrying that code.
Only codes are relied on, never message texts (EngageLab and userprops word some
messages differently).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from userprops_client._results import ItemError, item_errors


class UserpropsError(Exception):
    """Base of every exception the client raises.

    ``code`` is the wire code (None when no answer came, or it was not an envelope),
    ``status`` the HTTP status (None when no answer came), ``message`` the server's message,
    ``errors`` the rejected items when the failure is about items.
    """

    code: int | None = None

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        errors: tuple[ItemError, ...] = (),
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.status = status
        self.errors = errors

    def __str__(self) -> str:
        where = ", ".join(
            part
            for part in (
                f"code {self.code}" if self.code is not None else "",
                f"HTTP {self.status}" if self.status is not None else "",
            )
            if part
        )
        text = f"{self.message} ({where})" if where else self.message
        if self.errors:
            shown = "; ".join(_describe(item) for item in self.errors[:3])
            more = f"; and {len(self.errors) - 3} more" if len(self.errors) > 3 else ""
            text += f": {shown}{more}"
        return text


def _describe(item: ItemError) -> str:
    name = item.property or item.contact or (f"#{item.index}" if item.index is not None else "")
    return f"{name}: {item.message} ({item.code})" if name else f"{item.message} ({item.code})"


class AuthenticationFailed(UserpropsError):
    """40050: credentials missing, unknown, wrong or disabled."""

    code = 40050


class EuidMissing(UserpropsError):
    """40007: ``euid`` missing, null or empty."""

    code = 40007


class InvalidParameters(UserpropsError):
    """55004: the request's shape is wrong (a field missing or of the wrong type, too many
    items, an unknown contact name, a cursor the server did not hand out...)."""

    code = 55004


class InvalidProperties(UserpropsError):
    """55102: every item was rejected, at least one as invalid; see ``errors``."""

    code = 55102


class EmptyProperties(UserpropsError):
    """55103: every property was rejected for an empty value (null, "" or [])."""

    code = 55103


class StaleProperty(UserpropsError):
    """55106, an item code only: a ``set`` or ``delete`` property older (by its
    ``timestamp``) than the stored value, listed in a result's ``errors``; never raised
    (a request whose every property was rejected raises :class:`InvalidProperties`)."""

    code = 55106


class ContactExists(UserpropsError):
    """55014: every contact was rejected because its value belongs to another user."""

    code = 55014


class PathNotFound(UserpropsError):
    """40400: the server has no such endpoint (an older server, or the wrong base_url)."""

    code = 40400


class UserNotFound(UserpropsError):
    """40404: no user with that EUID in the credentials' project."""

    code = 40404


class MethodNotAllowed(UserpropsError):
    """40500: the endpoint exists but not for this method."""

    code = 40500


class RequestTimeout(UserpropsError):
    """40800: the request body did not arrive in time."""

    code = 40800


class PayloadTooLarge(UserpropsError):
    """41300: the request body is over the server's limit."""

    code = 41300


class IdempotencyKeyReused(UserpropsError):
    """42200: the ``Idempotency-Key`` was already used for a different request."""

    code = 42200


class RateLimited(UserpropsError):
    """42900: too many requests, still so after the client's retries. ``retry_after`` is
    the wait the server asked for, in seconds (None when it did not say)."""

    code = 42900

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class HeadersTooLarge(UserpropsError):
    """43100: the request's headers are over the server's limit."""

    code = 43100


class InternalError(UserpropsError):
    """50000: a bug in the server."""

    code = 50000


class Unavailable(UserpropsError):
    """50300: the server's storage failed and nothing was applied, still so after the
    client's retries."""

    code = 50300


class TransportError(UserpropsError):
    """No answer: the connection failed, broke or timed out (after the retries that were
    safe). The httpx exception is the ``__cause__``."""


class UnexpectedResponse(UserpropsError):
    """An answer that is not the JSON envelope (a proxy's error page, say)."""


class WebhookVerificationError(UserpropsError):
    """A webhook whose signature, timestamp or headers do not verify."""


ERROR_CLASSES: dict[int, type[UserpropsError]] = {
    cls.code: cls
    for cls in (
        AuthenticationFailed,
        EuidMissing,
        InvalidParameters,
        InvalidProperties,
        EmptyProperties,
        StaleProperty,
        ContactExists,
        PathNotFound,
        UserNotFound,
        MethodNotAllowed,
        RequestTimeout,
        PayloadTooLarge,
        IdempotencyKeyReused,
        RateLimited,
        HeadersTooLarge,
        InternalError,
        Unavailable,
    )
    if cls.code is not None
}
"""Every wire code an API call can answer, and its class."""


def error_from_answer(
    status: int, body: Mapping[str, Any], retry_after: float | None
) -> UserpropsError:
    """The exception for a failure envelope (``code`` not 0)."""
    code = int(body["code"])
    message = str(body.get("message", ""))
    errors = item_errors(body.get("errors"))
    cls = ERROR_CLASSES.get(code, UserpropsError)
    if cls is RateLimited:
        return RateLimited(
            message, retry_after=retry_after, code=code, status=status, errors=errors
        )
    return cls(message, code=code, status=status, errors=errors)
