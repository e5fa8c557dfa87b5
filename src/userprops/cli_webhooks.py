"""The ``userprops webhook`` commands and ``userprops deliver``: webhook endpoints, their
deliveries, and a delivery process of its own (docs/history-and-webhooks.md). Part of
the command line (:mod:`userprops.cli` adds them), in a module of its own for size."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import click

from userprops import webhooks
from userprops.cli import (
    _table,
    any_project_option,
    connect,
    database_option,
    emit,
    handles_errors,
    json_option,
    opened,
    project_option,
)
from userprops.config import Settings
from userprops.deliverer import Deliverer, Policy
from userprops.storage import redact_url
from userprops.storage.base import DeliveryStatus
from userprops.writer import Writer

webhook_id_argument = click.argument("webhook_id", metavar="ID", type=click.IntRange(1))


@click.group()
def webhook() -> None:
    """Webhook endpoints: every change of a project POSTed, signed, to a URL."""


@webhook.command("create")
@click.argument("url")
@project_option
@click.option(
    "--property",
    "properties",
    multiple=True,
    help="Only changes of this attribute; repeat for several (default: every change).",
)
@database_option
@json_option
@handles_errors
def webhook_create(
    url: str, project_slug: str, properties: tuple[str, ...], database: str, as_json: bool
) -> None:
    """Register an endpoint at URL (http or https); prints its id and signing secret (shown
    only this once). It receives the changes committed from now on."""
    with opened(database) as storage:
        created = webhooks.create(storage, project_slug, url, list(properties) or None)
    doc = created.as_dict()
    emit(
        as_json,
        doc,
        [
            f"created webhook {doc['id']} of project {project_slug}: {doc['url']}",
            f"properties: {', '.join(doc['properties'] or ['every change'])}",
            f"secret: {doc['secret']}   (shown only this once)",
        ],
    )


@webhook.command("list")
@any_project_option
@database_option
@json_option
@handles_errors
def webhook_list(project_slug: str | None, database: str, as_json: bool) -> None:
    """List endpoints (never their secrets): enabled or disabled and why, deliveries."""
    with opened(database) as storage:
        docs = webhooks.listing(storage, project_slug)
    rows = [
        [
            d["id"],
            d["project"],
            d["url"],
            ",".join(d["properties"] or ["*"]),
            d["deliveries"]["pending"],
            d["deliveries"]["dead"],
            webhooks.state(d),
        ]
        for d in docs
    ]
    header = ["ID", "PROJECT", "URL", "PROPERTIES", "PENDING", "DEAD", "STATE"]
    emit(as_json, docs, _table(rows, header))


def _toggle(enabled: bool) -> Any:
    def command(webhook_id: int, database: str, as_json: bool) -> None:
        with opened(database) as storage:
            doc = webhooks.set_enabled(storage, webhook_id, enabled)
        emit(as_json, doc, [f"webhook {webhook_id}: {webhooks.state(doc)}"])

    return command


webhook.command("disable", help="Disable an endpoint: nothing is sent to it; its changes wait.")(
    webhook_id_argument(database_option(json_option(handles_errors(_toggle(False)))))
)
webhook.command(
    "enable",
    help="Enable an endpoint: it resumes where it stopped, and retries waiting are due now.",
)(webhook_id_argument(database_option(json_option(handles_errors(_toggle(True))))))


@webhook.command("delete")
@webhook_id_argument
@database_option
@json_option
@handles_errors
def webhook_delete(webhook_id: int, database: str, as_json: bool) -> None:
    """Delete an endpoint with its deliveries, pending ones included."""
    with opened(database) as storage:
        webhooks.delete(storage, webhook_id)
    emit(as_json, {"id": webhook_id, "deleted": True}, [f"deleted webhook {webhook_id}"])


@webhook.command("deliveries")
@webhook_id_argument
@click.option("--status", type=click.Choice(webhooks.DELIVERY_STATUSES), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@database_option
@json_option
@handles_errors
def webhook_deliveries(
    webhook_id: int, status: DeliveryStatus | None, limit: int, database: str, as_json: bool
) -> None:
    """An endpoint's latest deliveries, newest first: attempts, when, the last error."""
    with opened(database) as storage:
        docs = webhooks.deliveries(storage, webhook_id, status, limit)
    rows = [
        [
            d["id"],
            d["seq"],
            d["euid"],
            d["status"],
            d["attempts"],
            webhooks.progress(d),
            webhooks.last_outcome(d),
        ]
        for d in docs
    ]
    lines = _table(rows, ["ID", "SEQ", "EUID", "STATUS", "ATTEMPTS", "WHEN", "LAST"])
    emit(as_json, docs, lines if docs else ["no deliveries"])


@webhook.command("redeliver")
@click.argument("delivery_id", metavar="[DELIVERY_ID]", type=click.IntRange(1), required=False)
@click.option("--webhook", "webhook_id", type=click.IntRange(1), help="With --dead: its endpoint.")
@click.option("--dead", is_flag=True, help="Every dead delivery of the --webhook endpoint.")
@database_option
@json_option
@handles_errors
def webhook_redeliver(
    delivery_id: int | None, webhook_id: int | None, dead: bool, database: str, as_json: bool
) -> None:
    """Send a delivery again (a dead letter, or one delivered), or with --webhook ID --dead
    every dead letter of an endpoint; each waits for its user's earlier pending change."""
    if (delivery_id is None) == (webhook_id is None) or dead != (webhook_id is not None):
        raise click.UsageError("give DELIVERY_ID, or --webhook ID --dead")
    with opened(database) as storage:
        if delivery_id is not None:
            queued = webhooks.redeliver(storage, delivery_id)
        else:
            assert webhook_id is not None
            queued = webhooks.redeliver_dead(storage, webhook_id)
    line = f"queued {queued} deliver{'y' if queued == 1 else 'ies'}"
    if delivery_id is not None and not queued:
        line = f"delivery {delivery_id} is pending and due already: nothing to queue"
    emit(as_json, {"queued": queued}, [line])


@click.command()
@database_option
@click.option(
    "--log-level",
    envvar="USERPROPS_LOG_LEVEL",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@handles_errors
def deliver(database: str, log_level: str) -> None:
    """Deliver webhooks in a process of its own (beside `serve --no-deliveries`, or as
    more delivery processes on PostgreSQL) until SIGTERM or Ctrl-C."""
    settings = Settings.from_env(database=database, log_level=log_level)
    policy = Policy.from_settings(settings)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    storage = connect(settings.database)
    try:
        storage.migrate()
        writer = Writer(storage, batch_max=settings.batch_max)
        writer.start()
        deliverer = Deliverer(writer, policy)
        try:
            deliverer.start()
            storage.watch_changes(deliverer.wake)
            click.echo(f"userprops delivering webhooks of {redact_url(settings.database)}")
            while not stop.wait(1.0):
                pass
        finally:
            deliverer.stop()
            writer.stop()
    finally:
        storage.close()
    click.echo("stopped")
