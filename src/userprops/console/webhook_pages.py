"""The console's webhook pages (docs/console.md, docs/history-and-webhooks.md): a
project's endpoints, made (the secret shown once), disabled, enabled and deleted, and an
endpoint's recent deliveries and dead letters, sent again. Every action is a function of
:mod:`userprops.webhooks`, as the ``userprops webhook`` commands use them, audited.
"""

from __future__ import annotations

import re
from typing import Any

from userprops import webhooks
from userprops.console.app import Answer, Console, PageError, Request, route
from userprops.console.pages import Revealed, project_page, redirect
from userprops.errors import InvalidParameters
from userprops.storage.base import DeliveryStatus

DELIVERIES_PAGE = 50
ONCE = (
    "It is shown only this once: the endpoint checks every delivery's webhook-signature"
    " with it (docs/history-and-webhooks.md)."
)
_SEPARATORS = re.compile(r"[\s,]+")


def _base(r: Request) -> str:
    return f"/projects/{r.params['slug']}/webhooks"


# The endpoints of a project


async def webhooks_list(c: Console, r: Request) -> Answer:
    return await _webhooks_page(c, r)


async def _webhooks_page(
    c: Console, r: Request, status: int = 200, error: str = "", revealed: Revealed | None = None
) -> Answer:
    found = await c.run(webhooks.listing, r.params["slug"])
    for doc in found:
        doc["state"] = webhooks.state(doc)
    return await project_page(
        c,
        r,
        "webhooks.html",
        "webhooks",
        status,
        webhooks=found,
        error=error,
        form=r.form,
        revealed=revealed,
    )


async def create_webhook(c: Console, r: Request) -> Answer:
    url = r.form.get("url", "").strip()
    properties = [p for p in _SEPARATORS.split(r.form.get("properties", "")) if p]
    try:
        made = await c.run(webhooks.create, r.params["slug"], url, properties or None, r.actor)
    except InvalidParameters as error:
        return await _webhooks_page(c, r, 400, error.detail)
    hook = made.webhook
    shown = Revealed(
        f"New webhook {hook.id}", (("id", str(hook.id)), ("secret", hook.secret)), ONCE
    )
    return await _webhooks_page(c, r, 201, revealed=shown)


async def _own_webhook(c: Console, r: Request) -> dict[str, Any]:
    """The endpoint of the URL, which must be of the URL's project (404 otherwise)."""
    wanted = int(r.params["webhook"])
    for doc in await c.run(webhooks.listing, r.params["slug"]):
        if doc["id"] == wanted:
            doc["state"] = webhooks.state(doc)
            return doc
    raise PageError(404, "This project has no such webhook endpoint.")


async def toggle_webhook(c: Console, r: Request) -> Answer:
    doc = await _own_webhook(c, r)
    await c.run(webhooks.set_enabled, doc["id"], r.params["verb"] == "enable", r.actor)
    return redirect(f"{_base(r)}#webhook-{doc['id']}")


async def delete_webhook(c: Console, r: Request) -> Answer:
    doc = await _own_webhook(c, r)
    await c.run(webhooks.delete, doc["id"], r.actor)
    return redirect(_base(r))


# An endpoint and its deliveries


def _status(raw: str | None) -> DeliveryStatus | None:
    for status in webhooks.DELIVERY_STATUSES:
        if raw == status:
            return status
    return None


async def webhook(c: Console, r: Request) -> Answer:
    doc = await _own_webhook(c, r)
    status = _status(r.query.get("status"))
    found = await c.run(webhooks.deliveries, doc["id"], status, DELIVERIES_PAGE)
    for d in found:
        d["progress"], d["outcome"] = webhooks.progress(d), webhooks.last_outcome(d)
    queued = r.query.get("queued", "")
    return await project_page(
        c,
        r,
        "webhook.html",
        "webhooks",
        webhook=doc,
        deliveries=found,
        chosen=status,
        statuses=webhooks.DELIVERY_STATUSES,
        queued=int(queued) if queued.isdigit() else None,
        page_size=DELIVERIES_PAGE,
    )


def _back(r: Request, webhook_id: int, queued: int) -> Answer:
    """To the endpoint's deliveries as they were shown, saying how many were queued."""
    status = _status(r.form.get("status"))
    shown = f"status={status}&" if status else ""
    return redirect(f"{_base(r)}/{webhook_id}?{shown}queued={queued}#deliveries")


async def redeliver(c: Console, r: Request) -> Answer:
    doc = await _own_webhook(c, r)
    delivery = int(r.params["delivery"])
    queued = await c.run(webhooks.redeliver, delivery, r.actor, doc["id"])  # 404 unless its
    return _back(r, doc["id"], queued)


async def redeliver_dead(c: Console, r: Request) -> Answer:
    doc = await _own_webhook(c, r)
    queued = await c.run(webhooks.redeliver_dead, doc["id"], r.actor)
    return _back(r, doc["id"], queued)


ROUTES = (
    route("GET", "/projects/{slug}/webhooks", webhooks_list),
    route("POST", "/projects/{slug}/webhooks", create_webhook),
    route("GET", "/projects/{slug}/webhooks/{webhook}", webhook),
    route("POST", "/projects/{slug}/webhooks/{webhook}/{verb}", toggle_webhook),
    route("POST", "/projects/{slug}/webhooks/{webhook}/delete", delete_webhook),
    route("POST", "/projects/{slug}/webhooks/{webhook}/redeliver-dead", redeliver_dead),
    route("POST", "/projects/{slug}/webhooks/{webhook}/deliveries/{delivery}/redeliver", redeliver),
)
