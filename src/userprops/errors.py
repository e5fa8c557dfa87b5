"""The one error table: every wire code, its HTTP status and default message.

Every failure the service reports is a :class:`UserpropsError` subclass. Front ends turn
it into the envelope with :func:`envelope`; docs/errors.md is checked against
:data:`CODE_TABLE` by the test suite.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec


class ErrorItem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One rejected item of a request, as the ``errors`` list carries it: where it was
    (``index`` of an event or an identity value, ``identity_value`` as sent, the
    ``property`` or the ``contact`` by name), its own ``code`` and a ``message``. Fields
    left unset are not sent."""

    index: int | None = None
    identity_value: Any = msgspec.UNSET
    property: str | None = None
    contact: str | None = None
    code: int
    message: str


class UserpropsError(Exception):
    """Base of every error with a wire code.

    ``errors`` lists rejected items (properties, identity values, contacts) when the
    failure is about items; ``headers`` are extra HTTP headers for the answer. ``detail``
    is the answer's message: ``message`` unless the raiser says more, except for a code
    whose message EngageLab documents (``verbatim``), which always answers that message
    (the ``errors`` say what went wrong with each item).
    """

    code: ClassVar[int] = 50000
    status: ClassVar[int] = 500
    message: ClassVar[str] = "internal error"
    verbatim: ClassVar[bool] = False  # message is EngageLab's documented text

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[ErrorItem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = self.message if self.verbatim else detail or self.message
        self.errors = errors
        self.headers = headers or {}
        super().__init__(self.detail)


class AuthenticationFailed(UserpropsError):
    code = 40050
    status = 401
    message = "authentication failed"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"www-authenticate": 'Basic realm="userprops"'})


class EuidMissing(UserpropsError):
    code = 40007
    status = 400
    message = "euid is missing or empty"


class InvalidParameters(UserpropsError):
    code = 55004
    status = 400
    message = "invalid business parameters"


class InvalidProperties(UserpropsError):
    code = 55102
    status = 400
    message = "Invalid user attributes exist"
    verbatim = True


class EmptyProperties(UserpropsError):
    code = 55103
    status = 400
    message = "user property values cannot be empty"


class StaleProperty(UserpropsError):
    """An item code only: a ``set`` or ``delete`` of a property whose stored value has a
    newer event time (docs/bulk.md, "Event time"). A request whose every property is
    rejected answers 55102, listing these among its ``errors``."""

    code = 55106
    status = 409
    message = "property is older than its stored value"


class ContactExists(UserpropsError):
    code = 55014
    status = 409
    message = "Contact exists"
    verbatim = True


class PathNotFound(UserpropsError):
    code = 40400
    status = 404
    message = "no such endpoint"


class UserNotFound(UserpropsError):
    code = 40404
    status = 404
    message = "user not found"


class ProjectNotFound(UserpropsError):
    code = 40410
    status = 404
    message = "project not found"


class DataSourceNotFound(UserpropsError):
    code = 40411
    status = 404
    message = "data source not found"


class WebhookNotFound(UserpropsError):
    code = 40412
    status = 404
    message = "webhook endpoint not found"


class DeliveryNotFound(UserpropsError):
    code = 40413
    status = 404
    message = "delivery not found"


class MethodNotAllowed(UserpropsError):
    code = 40500
    status = 405
    message = "method not allowed"

    def __init__(self, allowed: list[str]) -> None:
        super().__init__(
            f"method not allowed; allowed: {', '.join(allowed)}",
            headers={"allow": ", ".join(allowed)},
        )


class RequestTimeout(UserpropsError):
    code = 40800
    status = 408
    message = "request body not received in time"


class Conflict(UserpropsError):
    code = 40900
    status = 409
    message = "already exists"


class PayloadTooLarge(UserpropsError):
    code = 41300
    status = 413
    message = "request body too large"


class HeadersTooLarge(UserpropsError):
    code = 43100
    status = 431
    message = "request headers too large"


class IdempotencyKeyReused(UserpropsError):
    code = 42200
    status = 422
    message = "Idempotency-Key already used for a different request"


class RateLimited(UserpropsError):
    code = 42900
    status = 429
    message = "too many requests"

    def __init__(self, retry_after: int, reason: str = "too many requests") -> None:
        super().__init__(
            f"{reason}; retry after {retry_after} s",
            headers={"retry-after": str(retry_after)},
        )


class InternalError(UserpropsError):
    code = 50000
    status = 500
    message = "internal error"


class StorageUnavailable(UserpropsError):
    code = 50300
    status = 503
    message = "storage unavailable; nothing was applied, retry later"


CODE_TABLE: tuple[type[UserpropsError], ...] = (
    AuthenticationFailed,
    EuidMissing,
    InvalidParameters,
    InvalidProperties,
    EmptyProperties,
    StaleProperty,
    ContactExists,
    PathNotFound,
    UserNotFound,
    ProjectNotFound,
    DataSourceNotFound,
    WebhookNotFound,
    DeliveryNotFound,
    MethodNotAllowed,
    RequestTimeout,
    Conflict,
    PayloadTooLarge,
    HeadersTooLarge,
    IdempotencyKeyReused,
    RateLimited,
    InternalError,
    StorageUnavailable,
)
"""Every wire code except 0 (success), in the order docs/errors.md lists them."""

ENGAGELAB_MESSAGES: dict[int, str] = {
    0: "success",
    **{error.code: error.message for error in CODE_TABLE if error.verbatim},
}
"""The messages EngageLab's documentation shows for its codes, which userprops answers
verbatim (docs/errors.md marks them); every other message is userprops's own."""


def success_message(rejected: int) -> str:
    """The ``message`` of a code 0 answer: full success, or partial success when some
    items were rejected (and listed in ``errors``)."""
    return f"partial success: {rejected} item(s) rejected" if rejected else "success"


def envelope(error: UserpropsError) -> dict[str, Any]:
    """The JSON body for an error: ``code``, ``message`` and, when items failed, ``errors``."""
    body: dict[str, Any] = {"code": error.code, "message": error.detail}
    if error.errors is not None:
        body["errors"] = error.errors
    return body
