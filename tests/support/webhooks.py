"""Webhook deliveries made and attempted straight in storage, at a fixed time, with no
deliverer running: for tests of what the CLI and the console show and do with them."""

from __future__ import annotations

from userprops.schema import AttrType
from userprops.storage import Storage
from userprops.storage.base import NewChange, Outcome

NOW = 2_000_000_000_000


def changes(storage: Storage, pid: int, *euids: int) -> None:
    """A change of ``plan`` for each user, in order."""
    with storage.transaction() as tx:
        tx.record_changes(
            [NewChange(pid, e, "plan", "set", AttrType.STRING, None, "x", "t") for e in euids]
        )


def attempt_all(storage: Storage, kind: str, error: str = "HTTP 500") -> None:
    """Fan out, claim what is due and give every claimed attempt the outcome ``kind``."""
    with storage.transaction() as tx:
        tx.fan_out(NOW, 100)
        due = tx.claim_deliveries(NOW, NOW + 1000, {w.id: 100 for w in tx.list_webhooks(None)})
        tx.record_outcomes(
            [
                Outcome(d.id, d.webhook_id, d.euid, d.attempt, kind, status=500, error=error)  # type: ignore[arg-type]
                for d in due
            ],
            NOW,
        )
