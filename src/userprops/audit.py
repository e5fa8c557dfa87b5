"""The audit log (docs/console.md, "Audit"): every administrative action, from the console
or the command line, is recorded with who did it, what, on what, when, and details.

An action and its entry are written in one transaction (:func:`record` takes the
transaction), so the log never misses an action that happened nor shows one that did not.
Details never hold a secret or a password.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from userprops.clock import now_ms
from userprops.storage.base import Storage, Transaction

CLI = "cli"
"""The actor of what the command line did (``userprops serve`` included)."""
DEFAULT_PAGE = 50
MAX_PAGE = 500
_ENCODER = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True)
class Entry:
    id: int
    at: int  # epoch ms
    actor: str
    action: str
    target: str
    details: dict[str, Any]


def record(tx: Transaction, actor: str, action: str, target: str, **details: Any) -> None:
    """Append an entry in ``tx``: ``action`` is dotted (``datasource.rotate``), ``target``
    names what it acted on (a project's slug, an API key, an operator's name)."""
    tx.record_audit(now_ms(), actor, action, target, _ENCODER.encode(details).decode())


def page(storage: Storage, before: int | None, limit: int) -> tuple[list[Entry], int | None]:
    """Entries newest first below id ``before`` (all when None), and the ``before`` of the
    next page (None on the last)."""
    with storage.read() as tx:
        rows = tx.list_audit(before, limit + 1)
    entries = [
        Entry(r.id, r.at, r.actor, r.action, r.target, msgspec.json.decode(r.details))
        for r in rows[:limit]
    ]
    return entries, entries[-1].id if len(rows) > limit else None
