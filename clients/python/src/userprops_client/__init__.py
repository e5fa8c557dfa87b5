"""userprops-client: a typed client for userprops and EngageLab MA's user attribute API.

>>> from userprops_client import Client
>>> with Client(api_key, api_secret, base_url="http://127.0.0.1:8000") as up:
...     euid = up.register("user_id", ["alice"])["alice"]
...     up.increase(euid, {"orders": 1})
...     up.get(euid)
"""

from __future__ import annotations

from userprops_client._async_client import AsyncClient
from userprops_client._client import Client
from userprops_client._errors import (
    ERROR_CLASSES,
    AuthenticationFailed,
    ContactExists,
    EmptyProperties,
    EuidMissing,
    HeadersTooLarge,
    IdempotencyKeyReused,
    InternalError,
    InvalidParameters,
    InvalidProperties,
    MethodNotAllowed,
    PathNotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    StaleProperty,
    TransportError,
    Unavailable,
    UnexpectedResponse,
    UserNotFound,
    UserpropsError,
    WebhookVerificationError,
)
from userprops_client._results import (
    BatchResult,
    Change,
    ChangePage,
    Event,
    EventPage,
    HistoryPage,
    ItemError,
    Registration,
    SavedSegment,
    SegmentPage,
    WriteResult,
)
from userprops_client._retry import RetryPolicy
from userprops_client._version import __version__
from userprops_client._webhooks import verify_webhook

__all__ = [
    "ERROR_CLASSES",
    "AsyncClient",
    "AuthenticationFailed",
    "BatchResult",
    "Change",
    "ChangePage",
    "Client",
    "ContactExists",
    "EmptyProperties",
    "EuidMissing",
    "Event",
    "EventPage",
    "HeadersTooLarge",
    "HistoryPage",
    "IdempotencyKeyReused",
    "InternalError",
    "InvalidParameters",
    "InvalidProperties",
    "ItemError",
    "MethodNotAllowed",
    "PathNotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Registration",
    "RequestTimeout",
    "RetryPolicy",
    "SavedSegment",
    "SegmentPage",
    "StaleProperty",
    "TransportError",
    "Unavailable",
    "UnexpectedResponse",
    "UserNotFound",
    "UserpropsError",
    "WebhookVerificationError",
    "WriteResult",
    "__version__",
    "verify_webhook",
]
