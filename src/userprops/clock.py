"""The time, in the two forms the service stores it."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Epoch milliseconds (values' ``updated_at``, events' ``received_at``, expiries)."""
    return time.time_ns() // 1_000_000


def now_text() -> str:
    """ISO 8601 in UTC to the second (the ``created_at`` of definitions and accounts)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
