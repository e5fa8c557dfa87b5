"""Webhook endpoints (docs/history-and-webhooks.md): registering and managing them, and
the message each change becomes, signed per Standard Webhooks.

Synchronous functions over a :class:`~userprops.storage.base.Storage`, for the CLI and
the admin console, each in one transaction; an operator's action is recorded in the audit
log in its transaction, with ``actor`` as who did it (:mod:`userprops.audit`). The
deliverer (:mod:`userprops.deliverer`) sends the messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec

from userprops import audit, clock
from userprops.errors import (
    DeliveryNotFound,
    InvalidParameters,
    ProjectNotFound,
    WebhookNotFound,
)
from userprops.history import render_change
from userprops.schema import Rejected, check_name, check_timezone
from userprops.storage import redact_url
from userprops.storage.base import (
    WAITING,
    Delivery,
    DeliveryStatus,
    Storage,
    StoredChange,
    Webhook,
)

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix of every secret, not one)
SECRET_BYTES = 32
MAX_URL_LENGTH = 2048
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = ("pending", "delivered", "dead")
EVENT_TYPES = {
    "segment.entered": "user.segment.entered",
    "segment.left": "user.segment.left",
    "user.deleted": "user.deleted",
}
"""The ``type`` of a message by the change's ``op``; every write of a value (``set``,
``increase``, ``add``, ``remove``, ``delete``) is ``user.property.changed``."""
OPERATOR_DISABLED = "disabled by an operator"
_ENCODER = msgspec.json.Encoder(decimal_format="number")


# Endpoints


def check_url(url: str) -> str:
    """``url`` when it is an http or https URL with a host; 55004 otherwise, and for a
    literal link-local address (169.254.0.0/16, fe80::/10: cloud metadata services live
    there; docs/security.md)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a port that is not one)
    except ValueError:
        host = None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidParameters(f"webhook URL must be http:// or https:// with a host: {url!r}")
    if len(url) > MAX_URL_LENGTH or any(c.isspace() for c in url):
        raise InvalidParameters(f"webhook URL: at most {MAX_URL_LENGTH} characters, no spaces")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return url
    if address.is_link_local:
        raise InvalidParameters(f"webhook URL: {host} is a link-local address; refused")
    return url


def new_secret() -> str:
    """``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@dataclass(frozen=True)
class Created:
    """An endpoint with its secret, shown this once (:func:`create`)."""

    webhook: Webhook
    project: str

    def as_dict(self) -> dict[str, Any]:
        return {**describe(self.webhook, self.project), "secret": self.webhook.secret}


def create(
    storage: Storage,
    project_slug: str,
    url: str,
    properties: list[str] | None = None,
    actor: str = audit.CLI,
) -> Created:
    """Register an endpoint of a project; it receives the changes committed from now on
    (of ``properties`` only, when given)."""
    check_url(url)
    for name in properties or ():
        try:
            check_name(name)
        except Rejected as reason:
            raise InvalidParameters(f"--property {name!r}: {reason.reason}") from None
    wanted = sorted(set(properties)) if properties else None
    with storage.transaction() as tx:
        project = tx.get_project(project_slug)
        if project is None:
            raise ProjectNotFound(f"no project {project_slug!r}")
        webhook = tx.create_webhook(project.id, url, new_secret(), wanted)
        details = {"project": project_slug, "url": redact_url(url), "properties": wanted}
        audit.record(tx, actor, "webhook.create", str(webhook.id), **details)
    return Created(webhook, project_slug)


def describe(
    webhook: Webhook, project: str, counts: dict[str, int] | None = None
) -> dict[str, Any]:
    """An endpoint as the CLI shows it: never its secret, its URL without a password."""
    doc: dict[str, Any] = {
        "id": webhook.id,
        "project": project,
        "url": redact_url(webhook.url),
        "properties": None if webhook.properties is None else list(webhook.properties),
        "enabled": webhook.enabled,
        "disabled_reason": webhook.disabled_reason,
        "failing_since": webhook.failing_since,
        "failures": webhook.failures,
        "fanned_seq": webhook.fanned_seq,
        "created_at": webhook.created_at,
    }
    if counts is not None:
        doc["deliveries"] = {s: counts.get(s, 0) for s in DELIVERY_STATUSES}
    return doc


def state(doc: dict[str, Any]) -> str:
    """``enabled``, ``enabled, failing since ...`` or ``disabled: <why>``."""
    if not doc["enabled"]:
        return f"disabled: {doc['disabled_reason'] or OPERATOR_DISABLED}"
    if doc["failing_since"] is not None:
        return f"enabled, failing since {iso(doc['failing_since'])} ({doc['failures']} failed)"
    return "enabled"


def listing(storage: Storage, project_slug: str | None) -> list[dict[str, Any]]:
    """Every endpoint (of one project), with its deliveries counted by status."""
    with storage.read() as tx:
        slugs = {p.id: p.slug for p in tx.list_projects()}
        pid = None
        if project_slug is not None:
            pid = next((i for i, s in slugs.items() if s == project_slug), None)
            if pid is None:
                raise ProjectNotFound(f"no project {project_slug!r}")
        webhooks = tx.list_webhooks(pid)
        counts = tx.delivery_counts([w.id for w in webhooks])
    return [describe(w, slugs[w.project_id], counts.get(w.id, {})) for w in webhooks]


def _slug(storage: Storage, project_id: int) -> str:
    with storage.read() as tx:
        project = tx.get_project_by_id(project_id)
    return "?" if project is None else project.slug


def set_enabled(
    storage: Storage, webhook_id: int, enabled: bool, actor: str = audit.CLI
) -> dict[str, Any]:
    """Enable (fan-out resumes where it stopped, retries become due now) or disable."""
    with storage.transaction() as tx:
        reason = None if enabled else OPERATOR_DISABLED
        if not tx.set_webhook_enabled(webhook_id, enabled, reason, clock.now_ms()):
            raise WebhookNotFound(f"no webhook endpoint {webhook_id}")
        action = "webhook.enable" if enabled else "webhook.disable"
        audit.record(tx, actor, action, str(webhook_id))
        webhook = tx.get_webhook(webhook_id)
    assert webhook is not None
    return describe(webhook, _slug(storage, webhook.project_id))


def delete(storage: Storage, webhook_id: int, actor: str = audit.CLI) -> None:
    """Delete an endpoint and its deliveries, pending ones included."""
    with storage.transaction() as tx:
        if not tx.delete_webhook(webhook_id):
            raise WebhookNotFound(f"no webhook endpoint {webhook_id}")
        audit.record(tx, actor, "webhook.delete", str(webhook_id))


def deliveries(
    storage: Storage, webhook_id: int, status: DeliveryStatus | None, limit: int
) -> list[dict[str, Any]]:
    """An endpoint's latest deliveries, newest first."""
    with storage.read() as tx:
        if tx.get_webhook(webhook_id) is None:
            raise WebhookNotFound(f"no webhook endpoint {webhook_id}")
        found = tx.list_deliveries(webhook_id, status, limit, None)
    now = clock.now_ms()
    return [delivery_dict(d, now) for d in found]


def delivery_dict(d: Delivery, now: int) -> dict[str, Any]:
    waiting = d.status == "pending" and d.next_at == WAITING
    pending = d.status == "pending" and not waiting
    return {
        "id": d.id,
        "webhook_id": d.webhook_id,
        "seq": d.seq,
        "euid": d.euid,
        "status": d.status,
        "attempts": d.attempts,
        "waiting": waiting,
        "in_flight": d.status == "pending" and d.lease_until > now,
        "next_at": d.next_at if pending else None,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "created_at": d.created_at,
        "finished_at": d.finished_at,
    }


def redeliver(
    storage: Storage, delivery_id: int, actor: str = audit.CLI, webhook_id: int | None = None
) -> int:
    """Queue one delivery again (delivered, dead, or pending and waiting for a retry);
    with ``webhook_id``, only a delivery of that endpoint (:class:`DeliveryNotFound`
    otherwise)."""
    with storage.transaction() as tx:
        found = tx.get_delivery(delivery_id)
        if found is None or webhook_id not in (None, found.webhook_id):
            raise DeliveryNotFound(f"no delivery {delivery_id}")
        queued = tx.redeliver(found.webhook_id, [delivery_id], clock.now_ms())
        details = {"delivery": delivery_id, "queued": queued}
        audit.record(tx, actor, "webhook.redeliver", str(found.webhook_id), **details)
        return queued


def redeliver_dead(storage: Storage, webhook_id: int, actor: str = audit.CLI) -> int:
    """Queue every dead letter of an endpoint again; how many."""
    with storage.transaction() as tx:
        if tx.get_webhook(webhook_id) is None:
            raise WebhookNotFound(f"no webhook endpoint {webhook_id}")
        queued = tx.redeliver(webhook_id, None, clock.now_ms())
        audit.record(tx, actor, "webhook.redeliver", str(webhook_id), dead=True, queued=queued)
        return queued


def progress(delivery: dict[str, Any]) -> str:
    """Where a delivery stands: finished and when, in flight, waiting for the user's
    earlier change, or when its next attempt is due."""
    if delivery["finished_at"] is not None:
        return f"{delivery['status']} {iso(delivery['finished_at'])}"
    if delivery["in_flight"]:
        return "in flight"
    if delivery["waiting"]:
        return "after the user's earlier change"
    return f"next {iso(delivery['next_at'])}"


def last_outcome(delivery: dict[str, Any]) -> str:
    """A delivery's last attempt in words: its error, ``HTTP <status>``, or nothing."""
    if delivery["last_error"]:
        return str(delivery["last_error"])
    status = delivery["last_status"]
    return "" if status is None else f"HTTP {status}"


# Messages


def iso(millis: int) -> str:
    """Epoch ms as ISO 8601 in UTC, to the millisecond, with ``Z``."""
    text = datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def message_id(project_id: int, seq: int) -> str:
    """The ``webhook-id`` of a change: the same on every attempt and every endpoint."""
    return f"msg_{project_id}_{seq}"


def payload(change: StoredChange, timezone: str) -> bytes:
    """The body of a change's message: ``{"type", "timestamp", "data"}`` with ``data``
    as the feed renders it, in the project's time zone."""
    return _ENCODER.encode(
        {
            "type": EVENT_TYPES.get(change.op, "user.property.changed"),
            "timestamp": iso(change.at),
            "data": render_change(change, check_timezone(timezone)),
        }
    )


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,`` and the base64 HMAC-SHA256 of
    ``{id}.{timestamp}.{body}`` keyed with the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
