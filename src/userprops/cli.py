"""The ``userprops`` command line: serve, migrate, and administer projects, data sources,
attributes and users. Every option has a ``USERPROPS_*`` environment twin; ``--json``
prints one JSON document on stdout; errors go to stderr with exit status 1."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import msgspec

from userprops import admin, bulk, history, queries, users
from userprops.config import DEFAULT_DATABASE, Settings
from userprops.errors import UserpropsError
from userprops.eventlist import DEFAULT_LIMIT, MAX_LIMIT, ListQuery, decode_cursor
from userprops.schema import AttrType, SchemaMode
from userprops.serverlock import ServerRunning, sole_server
from userprops.storage import Storage, open_storage, redact_url

F = TypeVar("F", bound=Callable[..., Any])

Decorator = Callable[[F], F]

database_option: Decorator[Any] = click.option(
    "--database",
    envvar="USERPROPS_DATABASE",
    default=DEFAULT_DATABASE,
    show_default=True,
    help="Database URL: sqlite:///relative/path, sqlite:////absolute/path or postgresql://...",
)
json_option: Decorator[Any] = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document."
)
project_option: Decorator[Any] = click.option(
    "--project", "project_slug", required=True, envvar="USERPROPS_PROJECT"
)
any_project_option: Decorator[Any] = click.option(
    "--project", "project_slug", default=None, envvar="USERPROPS_PROJECT"
)


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def handles_errors(func: F) -> F:
    """Turn service errors into a message on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserpropsError as error:
            _fail(error.detail)
        except ValueError as error:
            _fail(str(error))

    return wrapper  # type: ignore[return-value]


def connect(url: str) -> Storage:
    """Open a database with the timeout and pool size of the environment's settings."""
    settings = Settings.from_env()
    return open_storage(url, timeout=settings.db_timeout, pool_size=settings.db_pool_size)


@contextmanager
def opened(url: str) -> Iterator[Storage]:
    storage = connect(url)
    try:
        storage.migrate()
        yield storage
    finally:
        storage.close()


# NUMBER values are Decimals: written as JSON numbers, exactly, not as strings.
_ENCODER = msgspec.json.Encoder(decimal_format="number", enc_hook=str)


def to_json(value: Any, indent: int = 0) -> str:
    return msgspec.json.format(_ENCODER.encode(value), indent=indent).decode()


def emit(as_json: bool, document: Any, lines: list[str]) -> None:
    if as_json:
        click.echo(to_json(document, indent=2))
    else:
        for line in lines:
            click.echo(printable(line))


def printable(text: str) -> str:
    """``text`` with what a terminal would act on written as escapes (``\\x1b``,
    ``\\u202e``): identity values, contacts and values are end users' text, and an
    escape sequence among them could rewrite an operator's terminal (its title, the
    clipboard, what earlier lines seem to say)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _table(rows: list[list[Any]], header: list[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


@click.group()
@click.version_option(package_name="userprops")
def main() -> None:
    """userprops: a self-hosted store of end-user attributes (EngageLab MA compatible)."""


@main.command()
@click.option("--host", envvar="USERPROPS_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="USERPROPS_PORT", default=8000, show_default=True, type=int)
@database_option
@click.option(
    "--log-level",
    envvar="USERPROPS_LOG_LEVEL",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--deliveries/--no-deliveries",
    default=None,
    help="Deliver webhooks in this process (default: on; USERPROPS_DELIVERIES).",
)
@handles_errors
def serve(host: str, port: int, database: str, log_level: str, deliveries: bool | None) -> None:
    """Run the HTTP API. On an empty database, create a default project and data source
    and print their key and secret once."""
    settings = Settings.from_env(
        host=host, port=port, database=database, log_level=log_level, deliveries=deliveries
    )
    try:
        with sole_server(settings.database):
            _serve(settings)
    except ServerRunning as exc:
        _fail(
            f"{exc}; SQLite takes one server process per database file: stop it first,"
            " or use PostgreSQL for several processes"
        )


def _serve(settings: Settings) -> None:
    import uvicorn

    from userprops.deliverer import Policy
    from userprops.http.app import App
    from userprops.http.httpguard import guarded_protocol

    log_level = settings.log_level
    Policy.from_settings(settings)  # a bad webhook setting stops it here, named
    with opened(settings.database) as storage:
        created = admin.bootstrap(storage)
    if created is not None:
        click.echo(
            f"Created project {created.project.slug!r} with API data source "
            f"{created.datasource.name!r}. The secret is shown only this once:\n"
            f"  api_key:    {created.datasource.api_key}\n"
            f"  api_secret: {created.api_secret}"
        )
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(
        App(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=guarded_protocol(
            header_timeout=settings.header_timeout,
            send_timeout=settings.send_timeout,
            max_header_bytes=settings.max_header_bytes,
            max_connections=settings.max_connections,
        ),
        ws="none",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        server_header=False,
        # The client address (for auth-failure limits) is the TCP peer, never a header a
        # client on 127.0.0.1 could set; behind a proxy it is the proxy (docs/security.md).
        proxy_headers=False,
    )
    where = f"http://{settings.host}:{settings.port}"
    click.echo(f"userprops serving {redact_url(settings.database)} on {where}")
    uvicorn.Server(config).run()


@main.command()
@database_option
@click.option("--dry-run", is_flag=True, help="List pending migrations; apply nothing.")
@json_option
@handles_errors
def migrate(database: str, dry_run: bool, as_json: bool) -> None:
    """Create or upgrade the database schema."""
    storage = connect(database)
    try:
        names = storage.migrate(dry_run=dry_run)
    finally:
        storage.close()
    verb = "pending" if dry_run else "applied"
    emit(
        as_json,
        {verb: names},
        [f"{verb}: {n}" for n in names] or [f"nothing {verb}; schema is up to date"],
    )


# Projects


@main.group()
def project() -> None:
    """Projects: tenants with their own users, attributes and data sources."""


@project.command("create")
@click.argument("slug")
@click.option(
    "--schema",
    "schema_mode",
    type=click.Choice(["auto", "strict"]),
    default="auto",
    show_default=True,
    help="auto: new attributes are defined by their first value; strict: define them first.",
)
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone name.")
@database_option
@json_option
@handles_errors
def project_create(
    slug: str, schema_mode: str, timezone: str, database: str, as_json: bool
) -> None:
    """Create a project."""
    with opened(database) as storage:
        p = admin.create_project(storage, slug, SchemaMode(schema_mode), timezone)
    emit(as_json, _project_dict(p), [f"created project {p.slug} (schema {p.schema_mode})"])


def _project_dict(p: Any) -> dict[str, Any]:
    return {
        "slug": p.slug,
        "schema": str(p.schema_mode),
        "timezone": p.timezone,
        "created_at": p.created_at,
    }


@project.command("list")
@database_option
@json_option
@handles_errors
def project_list(database: str, as_json: bool) -> None:
    """List projects."""
    with opened(database) as storage:
        projects = admin.list_projects(storage)
    rows = [[p.slug, str(p.schema_mode), p.timezone, p.created_at] for p in projects]
    emit(
        as_json,
        [_project_dict(p) for p in projects],
        _table(rows, ["SLUG", "SCHEMA", "TIMEZONE", "CREATED"]),
    )


# Data sources


@main.group()
def datasource() -> None:
    """API data sources: the key and secret a business system authenticates with."""


@datasource.command("create")
@click.argument("name")
@project_option
@database_option
@json_option
@handles_errors
def datasource_create(name: str, project_slug: str, database: str, as_json: bool) -> None:
    """Create a data source; prints its api_key and api_secret (shown only this once)."""
    with opened(database) as storage:
        creds = admin.create_datasource(storage, project_slug, name)
    emit(
        as_json,
        creds.as_dict(),
        [
            f"created data source {name} in project {project_slug}",
            f"api_key:    {creds.datasource.api_key}",
            f"api_secret: {creds.api_secret}   (shown only this once)",
        ],
    )


@datasource.command("list")
@any_project_option
@database_option
@json_option
@handles_errors
def datasource_list(project_slug: str | None, database: str, as_json: bool) -> None:
    """List data sources (never their secrets)."""
    with opened(database) as storage:
        sources = admin.list_datasources(storage, project_slug)
        slugs = {p.id: p.slug for p in admin.list_projects(storage)}
    docs = [
        {
            "project": slugs.get(ds.project_id, "?"),
            "name": ds.name,
            "api_key": ds.api_key,
            "enabled": ds.enabled,
            "created_at": ds.created_at,
        }
        for ds in sources
    ]
    rows = [
        [d["project"], d["name"], d["api_key"], "yes" if d["enabled"] else "no", d["created_at"]]
        for d in docs
    ]
    emit(as_json, docs, _table(rows, ["PROJECT", "NAME", "API_KEY", "ENABLED", "CREATED"]))


def _toggle(enabled: bool) -> Callable[[str, str, bool], None]:
    def command(api_key: str, database: str, as_json: bool) -> None:
        with opened(database) as storage:
            admin.set_datasource_enabled(storage, api_key, enabled)
        state = "enabled" if enabled else "disabled"
        emit(as_json, {"api_key": api_key, "enabled": enabled}, [f"{state} {api_key}"])

    return command


for _verb, _enabled in (("disable", False), ("enable", True)):
    datasource.command(_verb, help=f"{_verb.capitalize()} a data source, by its api_key.")(
        click.argument("api_key")(database_option(json_option(handles_errors(_toggle(_enabled)))))
    )


@datasource.command("rotate-secret")
@click.argument("api_key")
@database_option
@json_option
@handles_errors
def datasource_rotate(api_key: str, database: str, as_json: bool) -> None:
    """Give a data source a new secret (printed once); the old one stops working."""
    with opened(database) as storage:
        secret = admin.rotate_secret(storage, api_key)
    emit(
        as_json,
        {"api_key": api_key, "api_secret": secret},
        [f"api_key:    {api_key}", f"api_secret: {secret}   (shown only this once)"],
    )


# Attributes


@main.group()
def attribute() -> None:
    """Attribute definitions of a project."""


@attribute.command("define")
@click.argument("name")
@click.argument("kind", metavar="TYPE")
@project_option
@database_option
@json_option
@handles_errors
def attribute_define(name: str, kind: str, project_slug: str, database: str, as_json: bool) -> None:
    """Define attribute NAME with TYPE (STRING, NUMBER, BOOL, DATETIME or LIST, any case)."""
    attr_type = AttrType.parse(kind)
    with opened(database) as storage:
        created = admin.define_attribute(storage, project_slug, name, attr_type)
    state = "defined" if created else "already defined"
    emit(
        as_json,
        {"name": name, "type": str(attr_type), "created": created},
        [f"{state}: {name} {attr_type}"],
    )


@attribute.command("list")
@project_option
@database_option
@json_option
@handles_errors
def attribute_list(project_slug: str, database: str, as_json: bool) -> None:
    """List a project's attributes."""
    with opened(database) as storage:
        attrs = admin.list_attributes(storage, project_slug)
    emit(
        as_json,
        [{"name": n, "type": str(t), "created_at": c} for n, t, c in attrs],
        _table([[n, str(t), c] for n, t, c in attrs], ["NAME", "TYPE", "CREATED"]),
    )


# Users


@main.group()
def user() -> None:
    """Users and their attributes."""


@user.command("show")
@click.argument("euid", type=click.IntRange(1, 2**63 - 1))
@database_option
@json_option
@handles_errors
def user_show(euid: int, database: str, as_json: bool) -> None:
    """Print a user's identities, attributes, contacts and most recent events."""
    with opened(database) as storage:
        doc = admin.show_user(storage, euid)
    lines = [f"euid {doc['euid']} in project {doc['project']}"]
    lines += [f"  {i['identity_name']}: {i['identity_value']}" for i in doc["identities"]]
    lines += [f"  {k} = {to_json(v)}" for k, v in doc["properties"].items()]
    if doc["contacts"]:
        lines.append("  contacts:")
        lines += [f"    {name}: {value}" for name, value in doc["contacts"].items()]
    if doc["recent_events"]:
        lines.append("  recent events:")
        lines += [_event_line(e, indent="    ") for e in doc["recent_events"]]
    emit(as_json, doc, lines)


@user.command("list")
@project_option
@click.option("--after", type=click.IntRange(0, 2**63 - 1), default=0, help="Page after this EUID.")
@click.option("--limit", type=click.IntRange(1, users.MAX_PAGE), default=users.DEFAULT_PAGE)
@database_option
@json_option
@handles_errors
def user_list(project_slug: str, after: int, limit: int, database: str, as_json: bool) -> None:
    """List a project's users by EUID, a page at a time."""
    with opened(database) as storage:
        page = admin.list_users(storage, project_slug, after, limit)
    lines = [str(euid) for euid in page["euids"]] or ["no users"]
    if page["next_after"] is not None:
        lines.append(f"more: --after {page['next_after']}")
    emit(as_json, page, lines)


@user.command("lookup")
@click.argument("identity_name", type=click.Choice(users.IDENTITY_NAMES))
@click.argument("identity_value")
@project_option
@database_option
@json_option
@handles_errors
def user_lookup(
    identity_name: str, identity_value: str, project_slug: str, database: str, as_json: bool
) -> None:
    """Print the EUID of the user holding an identity value (nothing is created)."""
    with opened(database) as storage:
        euid = admin.lookup_user(storage, project_slug, identity_name, identity_value)
    emit(as_json, {"euid": euid}, [str(euid)])


@user.command("delete")
@click.argument("euid", type=click.IntRange(1, 2**63 - 1))
@database_option
@json_option
@handles_errors
def user_delete(euid: int, database: str, as_json: bool) -> None:
    """Erase a user: attributes, identities, contacts, events and the values in its history.
    A user.deleted change goes on the feed; the EUID is unknown afterwards."""
    with opened(database) as storage:
        slug = admin.erase_user(storage, euid)
    emit(
        as_json, {"euid": euid, "project": slug, "deleted": True}, [f"erased euid {euid} of {slug}"]
    )


@user.command("history")
@click.argument("euid", type=click.IntRange(1, 2**63 - 1))
@click.option("--property", "prop", default=None, help="Only this attribute's changes.")
@click.option("--from", "since", type=int, default=None, help="Epoch ms, inclusive.")
@click.option("--to", "until", type=int, default=None, help="Epoch ms, exclusive.")
@click.option("--limit", type=click.IntRange(1, history.MAX_LIMIT), default=history.DEFAULT_LIMIT)
@click.option("--cursor", default=None, help="next_cursor of the previous page.")
@database_option
@json_option
@handles_errors
def user_history(
    euid: int,
    prop: str | None,
    since: int | None,
    until: int | None,
    limit: int,
    cursor: str | None,
    database: str,
    as_json: bool,
) -> None:
    """List a user's changes, newest first: old -> new, with the source."""
    before = history.decode_cursor(cursor) if cursor else None
    query = history.HistoryQuery(euid, prop, since, until, limit, before)
    with opened(database) as storage:
        page = admin.list_history(storage, query)
    lines = [_change_line(c) for c in page["changes"]] or ["no changes"]
    if page["next_cursor"]:
        lines.append(f"more: --cursor {page['next_cursor']}")
    emit(as_json, page, lines)


def _when(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")


def _change_line(change: dict[str, Any]) -> str:
    old, new = to_json(change["old"]), to_json(change["new"])
    return (
        f"{_when(change['at'])}  #{change['seq']}  {change['property']}  {change['op']}"
        f"  {old} -> {new}  ({change['source']})"
    )


def _event_line(event: dict[str, Any], indent: str = "") -> str:
    props = to_json(event["properties"])
    return f"{indent}{_when(event['itime'])}  {event['event_name']}  {props}"


@project.command("set")
@click.argument("slug")
@click.option(
    "--event-retention-days",
    type=click.IntRange(min=0),
    default=None,
    help="Delete events older than N days (by itime); 0 keeps every event (the default).",
)
@click.option(
    "--history-retention-days",
    type=click.IntRange(min=0),
    default=None,
    help="Delete changes of the history older than N days; 0 keeps every change (the default).",
)
@database_option
@json_option
@handles_errors
def project_set(
    slug: str,
    event_retention_days: int | None,
    history_retention_days: int | None,
    database: str,
    as_json: bool,
) -> None:
    """Change a project's settings."""
    with opened(database) as storage:
        if event_retention_days is not None:
            admin.set_event_retention(storage, slug, event_retention_days or None)
        if history_retention_days is not None:
            admin.set_history_retention(storage, slug, history_retention_days or None)
        events, changes = admin.retention(storage, slug)
    emit(
        as_json,
        {"slug": slug, "event_retention_days": events, "history_retention_days": changes},
        [
            f"project {slug}: events kept {_kept(events)}",
            f"project {slug}: history kept {_kept(changes)}",
        ],
    )


def _kept(days: int | None) -> str:
    return f"{days} days" if days else "forever"


# Bulk


@main.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@project_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ndjson", "csv"]),
    default=None,
    help="By default from the file's extension (.csv, else NDJSON).",
)
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the lines not fully applied [default: FILE.errors.ndjson].",
)
@click.option(
    "--chunk",
    type=click.IntRange(1, 100_000),
    default=bulk.CHUNK,
    show_default=True,
    help="Lines per transaction.",
)
@click.option("--restart", is_flag=True, help="Import from the first line, whatever ran before.")
@database_option
@json_option
@handles_errors
def import_command(
    path: Path,
    project_slug: str,
    fmt: str | None,
    errors_path: Path | None,
    chunk: int,
    restart: bool,
    database: str,
    as_json: bool,
) -> None:
    """Import attribute values from NDJSON or CSV (docs/bulk.md); resumes after an
    interruption without applying a line twice."""
    limits = Settings.from_env().limits
    with (
        opened(database) as storage,
        click.progressbar(length=path.stat().st_size, label="importing", file=sys.stderr) as bar,
    ):
        summary = bulk.import_file(
            storage,
            project_slug,
            path,
            fmt=fmt,
            chunk=chunk,
            errors_path=errors_path,
            restart=restart,
            limits=limits,
            progress=bar.update,
        )
    document = summary.as_dict()
    lines = [
        f"{summary.lines} lines read ({summary.skipped} done before): {summary.applied} applied,"
        f" {summary.partial} partly, {summary.rejected} rejected",
        f"{summary.values} values in {summary.seconds:.1f} s"
        f" ({summary.values_per_second:,.0f} values/s)",
    ]
    if summary.errors_file:
        lines.append(f"lines not fully applied: {summary.errors_file}")
    emit(as_json, document, lines)


@main.command("export")
@project_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The file to write [default: standard output].",
)
@database_option
@handles_errors
def export_command(project_slug: str, output: Path | None, database: str) -> None:
    """Write every user of a project as NDJSON (identities and attributes), which
    `userprops import` reads back to the same state."""
    with opened(database) as storage:
        if output is None:
            count = bulk.export_project(storage, project_slug, sys.stdout.buffer)
        else:
            with output.open("wb") as out:
                count = bulk.export_project(storage, project_slug, out)
    click.echo(f"exported {count} users", err=True)


# Events


@main.group()
def event() -> None:
    """Events reported by business systems."""


@event.command("list")
@click.argument("euid", type=click.IntRange(1, 2**63 - 1))
@click.option("--from", "since", type=int, default=None, help="Epoch ms, inclusive.")
@click.option("--to", "until", type=int, default=None, help="Epoch ms, exclusive.")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=DEFAULT_LIMIT)
@click.option("--cursor", default=None, help="next_cursor of the previous page.")
@database_option
@json_option
@handles_errors
def event_list(
    euid: int,
    since: int | None,
    until: int | None,
    limit: int,
    cursor: str | None,
    database: str,
    as_json: bool,
) -> None:
    """List a user's events, newest first."""
    before = decode_cursor(cursor) if cursor else None
    with opened(database) as storage:
        page = admin.list_events(storage, ListQuery(euid, since, until, limit, before))
    lines = [_event_line(e) for e in page["events"]] or ["no events"]
    if page["next_cursor"]:
        lines.append(f"more: --cursor {page['next_cursor']}")
    emit(as_json, page, lines)


@event.command("names")
@project_option
@database_option
@json_option
@handles_errors
def event_names(project_slug: str, database: str, as_json: bool) -> None:
    """List the events a project has defined (by reporting them or defining a property)."""
    with opened(database) as storage:
        names = admin.list_event_names(storage, project_slug)
    emit(
        as_json,
        [{"name": n, "created_at": c} for n, c in names],
        _table([[n, c] for n, c in names], ["EVENT", "CREATED"]),
    )


@main.group("event-property")
def event_property() -> None:
    """Event property types: fixed by the first value, or defined in advance here."""


@event_property.command("define")
@click.argument("event_name", metavar="EVENT")
@click.argument("name")
@click.argument("kind", metavar="TYPE")
@project_option
@database_option
@json_option
@handles_errors
def event_property_define(
    event_name: str, name: str, kind: str, project_slug: str, database: str, as_json: bool
) -> None:
    """Define property NAME of EVENT with TYPE (STRING, NUMBER, BOOL, DATETIME or LIST)."""
    attr_type = AttrType.parse(kind)
    with opened(database) as storage:
        created = admin.define_event_property(storage, project_slug, event_name, name, attr_type)
    state = "defined" if created else "already defined"
    emit(
        as_json,
        {"event": event_name, "name": name, "type": str(attr_type), "created": created},
        [f"{state}: {event_name}.{name} {attr_type}"],
    )


@event_property.command("list")
@project_option
@click.option("--event", "event_name", default=None, help="Only this event's properties.")
@database_option
@json_option
@handles_errors
def event_property_list(
    project_slug: str, event_name: str | None, database: str, as_json: bool
) -> None:
    """List the event property types of a project."""
    with opened(database) as storage:
        props = admin.list_event_properties(storage, project_slug, event_name)
    emit(
        as_json,
        [{"event": e, "name": n, "type": str(t), "created_at": c} for e, n, t, c in props],
        _table([[e, n, str(t), c] for e, n, t, c in props], ["EVENT", "NAME", "TYPE", "CREATED"]),
    )


# Segments


@main.group()
def segment() -> None:
    """Saved segments and queries over users' attributes (docs/segments.md)."""


where_option = click.option(
    "--where",
    "where_text",
    required=True,
    help="The condition as JSON, @PATH to read it from a file, or - for standard input.",
)


def _where(text: str) -> Any:
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    try:
        return queries.decode_where(text)
    except ValueError as exc:
        raise ValueError(f"--where is {exc}") from None


page_limit = click.option(
    "--limit", type=click.IntRange(0, queries.MAX_LIMIT), default=queries.DEFAULT_LIMIT
)
page_cursor = click.option("--cursor", default=None, help="next_cursor of the previous page.")


def _page_lines(page: dict[str, Any]) -> list[str]:
    lines = [f"{page['count']} users"] + [str(e) for e in page["euids"]]
    if page["next_cursor"]:
        lines.append(f"more: --cursor {page['next_cursor']}")
    return lines


@segment.command("create")
@click.argument("name")
@where_option
@project_option
@database_option
@json_option
@handles_errors
def segment_create(
    name: str, where_text: str, project_slug: str, database: str, as_json: bool
) -> None:
    """Create segment NAME, or replace its condition; prints its member count once its
    membership is built (a replaced condition records who entered and left)."""
    where = _where(where_text)
    limits = Settings.from_env().limits
    with opened(database) as storage:
        saved = admin.save_segment(storage, project_slug, name, where, limits)
    verb = "created" if saved["created"] else "replaced"
    emit(as_json, saved, [f"{verb} segment {name}: {saved['count']} members"])


@segment.command("list")
@project_option
@database_option
@json_option
@handles_errors
def segment_list(project_slug: str, database: str, as_json: bool) -> None:
    """List a project's saved segments with their member counts."""
    with opened(database) as storage:
        found = admin.list_segments(storage, project_slug)
    rows = [
        [s["name"], s["count"], "done" if s["complete"] else "building", to_json(s["where"])]
        for s in found
    ]
    emit(as_json, found, _table(rows, ["NAME", "MEMBERS", "STATE", "WHERE"]))


@segment.command("show")
@click.argument("name")
@project_option
@database_option
@json_option
@handles_errors
def segment_show(name: str, project_slug: str, database: str, as_json: bool) -> None:
    """Print a saved segment: its condition, member count, and dates."""
    with opened(database) as storage:
        doc = admin.show_segment(storage, project_slug, name)
    lines = [
        f"segment {doc['name']}: {doc['count']} members"
        + ("" if doc["complete"] else " (building)"),
        f"  where: {to_json(doc['where'])}",
        f"  created {doc['created_at']}, updated {doc['updated_at']}",
    ]
    emit(as_json, doc, lines)


@segment.command("members")
@click.argument("name")
@project_option
@page_limit
@page_cursor
@database_option
@json_option
@handles_errors
def segment_members(
    name: str, project_slug: str, limit: int, cursor: str | None, database: str, as_json: bool
) -> None:
    """List a saved segment's members, EUIDs ascending, a page at a time."""
    with opened(database) as storage:
        page = admin.segment_members(
            storage, project_slug, queries.MembersQuery(name, limit, cursor)
        )
    emit(as_json, page, _page_lines(page))


@segment.command("query")
@where_option
@project_option
@page_limit
@page_cursor
@database_option
@json_option
@handles_errors
def segment_query(
    where_text: str,
    project_slug: str,
    limit: int,
    cursor: str | None,
    database: str,
    as_json: bool,
) -> None:
    """Count the users matching a condition and list a page of their EUIDs."""
    query = queries.SegmentQuery(_where(where_text), limit, cursor)
    limits = Settings.from_env().limits
    with opened(database) as storage:
        page = admin.query_segment(storage, project_slug, query, limits)
    emit(as_json, page, _page_lines(page))


# Backup and restore

backup_path = click.argument("path", type=click.Path(dir_okay=False, path_type=Path))


def _copied(as_json: bool, document: dict[str, Any], headline: str) -> None:
    counts: dict[str, int] = document["tables"]
    emit(as_json, document, [headline] + [f"  {t}: {n} rows" for t, n in counts.items()])


@main.command("backup")
@backup_path
@click.option("--overwrite", is_flag=True, help="Replace PATH if it exists.")
@database_option
@json_option
@handles_errors
def backup_command(path: Path, overwrite: bool, database: str, as_json: bool) -> None:
    """Copy the SQLite database into PATH: one consistent snapshot, safe while a server
    writes to it (SQLite's online backup). For PostgreSQL use pg_dump."""
    from userprops import backup

    counts = backup.backup(database, path, overwrite=overwrite)
    _copied(as_json, {"backup": str(path), "tables": counts}, f"backed up into {path}")


@main.command("restore")
@backup_path
@click.option("--force", is_flag=True, help="Replace a database that holds data.")
@database_option
@json_option
@handles_errors
def restore_command(path: Path, force: bool, database: str, as_json: bool) -> None:
    """Replace the SQLite database with the backup PATH, then migrate it. Stop the server
    first, and start it again after. For PostgreSQL use pg_restore."""
    from userprops import backup

    counts = backup.restore(path, database, force=force)
    _copied(as_json, {"restored": str(path), "tables": counts}, f"restored {path}")


# Moving between databases


@main.command("copy")
@click.option("--from", "source_url", required=True, help="Database to copy from.")
@click.option("--to", "target_url", required=True, help="Empty database to copy into.")
@json_option
@handles_errors
def copy_command(source_url: str, target_url: str, as_json: bool) -> None:
    """Copy every project, data source, attribute, user, contact and event into an empty
    database, keeping EUIDs and API keys, e.g. --from sqlite:///userprops.db --to
    postgresql://host/db."""
    from userprops.copy import copy_database, total_rows

    with opened(source_url) as source, opened(target_url) as target:
        with click.progressbar(length=total_rows(source), label="copying", file=sys.stderr) as bar:
            counts = copy_database(source, target, bar.update)
    emit(
        as_json,
        {"copied": counts},
        [f"copied {n} {table}" for table, n in counts.items()] + ["counts verified"],
    )


def _operator_commands() -> click.Group:
    """``userprops operator ...``, in the console's package; it uses the helpers above."""
    from userprops.console.commands import operator

    return operator


main.add_command(_operator_commands())
# Webhooks: their own module (userprops.cli_webhooks), which uses the helpers above.
from userprops.cli_webhooks import deliver, webhook  # noqa: E402

main.add_command(webhook)
main.add_command(deliver)
